/*
 * A lazyfree (MADV_FREE'd, clean) large folio that is pinned for DMA
 * (io_uring fixed buffer, FOLL_LONGTERM) when reclaim comes: it must not
 * be discarded, and, since nobody wrote it, it should stay lazyfree so
 * that reclaim frees it once the pin is gone.
 *
 * Thread: Barry Song, "mm: batched unmap lazyfree large folios during
 * reclamation": patch 3/4 discards a whole folio at once only when
 * "ref_count == 1 + map_count" (a pin adds references); patch 1/4 "Set
 * folio swapbacked iff folios are dirty in try_to_unmap_one" keeps a clean
 * folio lazyfree when the discard fails (before it, a failed discard made
 * it swap-backed: smaps LazyFree drops to 0 and, without swap, the memory
 * is never freed).
 *
 * Expected output:
 *   6.15+: pinned pages kept (same PFNs, data intact), LazyFree still the
 *     whole range, after the unpin the second reclaim discards it: exit 0;
 *   before 6.15 (patch 1/4 missing): pages kept but "LazyFree 0 kB" after
 *     the failed discard and nothing freed by the second reclaim: exit 1;
 *   a kernel that discards pinned pages (PFNs changed, zeros read): exit 1.
 *
 *   cc lazyfree_pinned.c && sudo ./a.out [SIZE_KB]    (default 64)
 *
 * Needs root and io_uring (not disabled by kernel.io_uring_disabled).
 * Sets hugepages-SIZEkB/enabled to madvise, the other sizes to never; all
 * put back at exit, also on SIGINT/SIGTERM/SIGHUP.
 * Exit: 0 behaves, 1 reproduced, 4 cannot run here (reason printed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/io_uring.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define THP "/sys/kernel/mm/transparent_hugepage"

/* ---- mTHP settings: saved, changed, always restored ---------------------- */
static struct { char path[320]; char val[32]; } saved[32];
static int nsaved;

static int sysfs_read(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY), n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return n;
}

static int sysfs_write(const char *path, const char *val)
{
	int fd = open(path, O_WRONLY), ok;

	if (fd < 0)
		return -1;
	ok = write(fd, val, strlen(val)) == (ssize_t)strlen(val);
	close(fd);
	return ok ? 0 : -1;
}

static void restore(void)
{
	for (int i = 0; i < nsaved; i++)
		sysfs_write(saved[i].path, saved[i].val);
	nsaved = 0;
}

static void on_signal(int sig)
{
	restore();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* "always [madvise] never" -> "madvise" */
static void bracketed(const char *text, char *out, size_t len)
{
	const char *b = strchr(text, '['), *e = b ? strchr(b, ']') : NULL;

	snprintf(out, len, "%.*s", b && e ? (int)(e - b - 1) : 0, b ? b + 1 : "");
}

/* One run at a time with the suite (it flocks the same file). */
static void take_lock(void)
{
	static int fd = -1;

	if (fd >= 0)
		return;		/* held: a second open file would wait for us */
	fd = open("/run/lock/folio_util.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0 && !getenv("FOLIO_UTIL_LOCK_HELD") && flock(fd, LOCK_EX | LOCK_NB)) {
		printf("waiting for /run/lock/folio_util.lock (another run)\n");
		flock(fd, LOCK_EX);
	}
}

/* Only SIZE_KB faults as a large folio (with MADV_HUGEPAGE): 0 or reason. */
static const char *mthp_only(unsigned long size_kb)
{
	char path[320], buf[128];
	struct dirent *d;
	unsigned long kb;
	int found = 0, i;
	DIR *dir;

	take_lock();
	dir = opendir(THP);
	if (!dir)
		return "no " THP ": kernel without THP";
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);
	atexit(restore);
	while ((d = readdir(dir)) && nsaved < 32) {
		if (sscanf(d->d_name, "hugepages-%lukB", &kb) != 1)
			continue;
		snprintf(path, sizeof(path), THP "/%s/enabled", d->d_name);
		if (sysfs_read(path, buf, sizeof(buf)) < 0)
			continue;	/* e.g. 8 kB: no anonymous mTHP of that size */
		for (i = 0; i < nsaved && strcmp(saved[i].path, path); i++)
			;
		if (i == nsaved) {	/* saved once: the value found at start */
			snprintf(saved[i].path, sizeof(saved[0].path), "%s", path);
			bracketed(buf, saved[i].val, sizeof(saved[0].val));
			nsaved++;
		}
		if (sysfs_write(path, kb == size_kb ? "madvise" : "never")) {
			closedir(dir);
			return "cannot write mTHP sysfs (not root?)";
		}
		found |= kb == size_kb;
	}
	closedir(dir);
	return found ? NULL : "this mTHP size is not offered by the kernel";
}

static long stat_read(unsigned long size_kb, const char *name)
{
	char path[160], buf[32];

	snprintf(path, sizeof(path), THP "/hugepages-%lukB/stats/%s", size_kb, name);
	return sysfs_read(path, buf, sizeof(buf)) < 0 ? -1 : atol(buf);
}

/* LazyFree (kB) of the VMA that holds addr */
static long lazyfree_kb(void *addr)
{
	char line[256];
	unsigned long lo, hi;
	long v = -1, inside = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (inside && !strncmp(line, "LazyFree:", 9))
			v = atol(line + 9);
	}
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	unsigned long size_kb = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	size_t page = sysconf(_SC_PAGESIZE), nfolios = 4;
	size_t len = nfolios * (size_kb << 10), nr = len / page;
	size_t moved = 0, wrong = 0, present = 0;
	long alloc0, alloc, lf_before, lf_after, lf_unpinned;
	struct io_uring_params params;
	uint64_t *pfn = calloc(nr, 8), e;
	int pm = open("/proc/self/pagemap", O_RDONLY), ring, lazy_lost, freed;
	struct iovec iov;
	const char *why;
	char *raw, *p;

	if (argc > 2 || !size_kb || (size_kb & (size_kb - 1)) ||
	    (size_kb << 10) < 2 * page || (size_kb << 10) >= (2UL << 20)) {
		fprintf(stderr, "usage: %s [SIZE_KB (mTHP size below the PMD "
			"size, default 64)]\n", argv[0]);
		return 2;
	}
	why = mthp_only(size_kb);
	if (!why && pm < 0)
		why = "cannot open /proc/self/pagemap";
	if (why) {
		printf("verdict: cannot run: %lu kB mTHP: %s\n", size_kb, why);
		return 4;
	}
	raw = mmap(NULL, len + (2 << 20), PROT_READ | PROT_WRITE,
		   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	p = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~((2UL << 20) - 1));
	madvise(p, len, MADV_HUGEPAGE);
	alloc0 = stat_read(size_kb, "anon_fault_alloc");
	for (size_t i = 0; i < len; i++)
		p[i] = 1 + i % 251;
	alloc = stat_read(size_kb, "anon_fault_alloc") - alloc0;
	if (alloc < (long)nfolios) {
		printf("verdict: cannot run: %ld of %zu folios were %lu kB\n",
		       alloc, nfolios, size_kb);
		return 4;
	}
	madvise(p, len, MADV_FREE);
	lf_before = lazyfree_kb(p);

	/* the pin: io_uring fixed buffer, pin_user_pages(FOLL_LONGTERM) */
	memset(&params, 0, sizeof(params));
	ring = syscall(__NR_io_uring_setup, 1, &params);
	iov.iov_base = p;
	iov.iov_len = len;
	if (ring < 0 || syscall(__NR_io_uring_register, ring,
				IORING_REGISTER_BUFFERS, &iov, 1)) {
		printf("verdict: cannot run: io_uring fixed buffer: %s\n",
		       strerror(errno));
		return 4;
	}
	for (size_t i = 0; i < nr; i++) {
		pread(pm, &e, 8, ((uintptr_t)p / page + i) * 8);
		pfn[i] = e & ((1ULL << 55) - 1);
	}
	printf("%zu lazyfree %lu kB folios (LazyFree %ld kB), pinned as an "
	       "io_uring fixed buffer; MADV_PAGEOUT:\n", nfolios, size_kb,
	       lf_before);
	madvise(p, len, MADV_PAGEOUT);
	for (size_t i = 0; i < nr; i++) {
		pread(pm, &e, 8, ((uintptr_t)p / page + i) * 8);
		present += e >> 63;
		moved += !(e >> 63) || (e & ((1ULL << 55) - 1)) != pfn[i];
	}
	for (size_t i = 0; i < len; i++)
		wrong += (unsigned char)p[i] != 1 + i % 251;
	lf_after = lazyfree_kb(p);
	printf("  while pinned: %zu/%zu pages present, %zu unmapped or moved, "
	       "%zu bytes wrong, LazyFree %ld kB\n", present, nr, moved, wrong,
	       lf_after);

	syscall(__NR_io_uring_register, ring, IORING_UNREGISTER_BUFFERS, NULL, 0);
	close(ring);
	madvise(p, len, MADV_PAGEOUT);
	present = 0;
	for (size_t i = 0; i < nr; i++) {
		pread(pm, &e, 8, ((uintptr_t)p / page + i) * 8);
		present += e >> 63;
	}
	lf_unpinned = lazyfree_kb(p);
	printf("  unpinned, MADV_PAGEOUT again: %zu/%zu pages present, "
	       "LazyFree %ld kB\n", present, nr, lf_unpinned);
	restore();
	lazy_lost = lf_after < lf_before;
	freed = present == 0;
	if (moved || wrong) {
		printf("verdict: REPRODUCED: pinned lazyfree pages were discarded "
		       "or replaced (%zu pages, %zu bytes): the pin no longer sees "
		       "the process's memory\n", moved, wrong);
		return 1;
	}
	if (lazy_lost || !freed) {
		printf("verdict: REPRODUCED: the failed discard of a pinned clean "
		       "folio made it swap-backed (LazyFree %ld -> %ld kB; %s after "
		       "the unpin): no 'swapbacked iff dirty'\n", lf_before,
		       lf_after, freed ? "freed" : "not freed");
		return 1;
	}
	printf("verdict: OK: pinned lazyfree folios kept intact while pinned, "
	       "still lazyfree, discarded after the unpin\n");
	return 0;
}
