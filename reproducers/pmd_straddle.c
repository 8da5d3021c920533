/*
 * A large folio straddling a PMD boundary: its PTEs sit in two page
 * tables. Lazyfree reclaim must not batch past the end of the first one.
 * Builds the folio, mremap()s it so that K of its pages lie below the
 * boundary, for every K, prints the contiguity table (PFNs, compound
 * head/tails), then MADV_FREE + MADV_PAGEOUT and checks every page.
 *
 * Thread: Barry Song's "Support batched unmap for lazyfree large folios
 * during reclamation" (v4 3/4); David Hildenbrand: "Let's assume we have
 * the first page of a folio mapped at the last page table entry in our
 * page table. What prevents folio_pte_batch() from reading outside the
 * page table?" Lance Yang's reproducer moved a 64 KiB folio across a PMD
 * boundary with mremap(MREMAP_FIXED). The merged code (6.15) only batches
 * a folio that lies whole in one page table.
 *
 * Expected output: with the check, every row "contiguous yes, head/tails
 * ok" and after reclaim each page is either discarded (reads zero) or kept
 * with its data and PFN, kernel log clean, exit 0. Without it, batching
 * reads PTEs beyond the page table: pages unmapped wrongly, foreign data,
 * or "Bad page map"/"Bad rss-counter"/BUG in the kernel log: exit 1.
 *
 *   cc pmd_straddle.c && sudo ./a.out [SIZE_KB|all]     (default 64)
 *
 * Needs root (mTHP sysfs, /proc/kpageflags, /dev/kmsg). Sets the size's
 * hugepages-<size>kB/enabled to madvise, the other sizes to never; all
 * put back at exit, also on SIGINT/SIGTERM/SIGHUP.
 * Exit: 0 behaves, 1 reproduced, 4 cannot run here (reason printed).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
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

static size_t page, pmd;
static int pm_fd, kpf_fd, kmsg_fd = -1;

static uint64_t pfn_of(char *addr)
{
	uint64_t e = 0;

	pread(pm_fd, &e, 8, (uintptr_t)addr / page * 8);
	return e >> 63 ? e & ((1ULL << 55) - 1) : 0;
}

static uint64_t kflags(uint64_t pfn)
{
	uint64_t f = 0;

	pread(kpf_fd, &f, 8, pfn * 8);
	return f;
}

/* Kernel log lines since kmsg_fd was opened that name a kernel bug. */
static int kmsg_bad(void)
{
	static const char *bad[] = { "BUG", "WARNING", "Oops", "Bad page",
				     "Bad rss-counter", "general protection" };
	char rec[2048];
	ssize_t n;
	int found = 0;

	while (kmsg_fd >= 0 && ((n = read(kmsg_fd, rec, sizeof(rec) - 1)) > 0 ||
				(n < 0 && errno == EPIPE))) {
		if (n <= 0)
			continue;
		rec[n] = 0;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (strstr(rec, bad[i])) {
				printf("kernel log: %s", strchr(rec, ';') ? strchr(rec, ';') + 1 : rec);
				found = 1;
				break;
			}
	}
	return found;
}

static char fill(size_t k, size_t i)
{
	return 1 + (k * 31 + i * 7) % 250;
}

/* One size, every offset: returns the number of bad offsets, -1 cannot. */
static int one_size(unsigned long size_kb)
{
	size_t size = size_kb << 10, nr = size / page;
	int bad_offsets = 0;
	const char *why = mthp_only(size_kb);

	if (why) {
		printf("%lu kB: cannot run: %s\n", size_kb, why);
		return -1;
	}
	printf("\n%lu kB folio (%zu pages) straddling a PMD boundary: K pages "
	       "below it, %zu-K above\n", size_kb, nr, nr);
	printf("  K | first PFN  | contiguous | head/tails | after MADV_FREE+"
	       "MADV_PAGEOUT: discarded kept bad | split_deferred\n");
	for (size_t k = 1; k < nr; k++) {
		char *resv = mmap(NULL, 5 * pmd, PROT_NONE,
				  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
		char *base, *src, *dst;
		uint64_t pfn[512], first = 0;
		size_t contig = 1, heads = 1, gone = 0, kept = 0, bad = 0;
		long split0;

		if (resv == MAP_FAILED)
			return -1;
		base = (char *)(((uintptr_t)resv + pmd - 1) & ~(pmd - 1));
		src = base + pmd;
		dst = base + 3 * pmd - k * page;
		for (int attempt = 0; attempt < 5; attempt++) {
			mmap(src, size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
			madvise(src, size, MADV_HUGEPAGE);
			for (size_t i = 0; i < nr; i++)
				memset(src + i * page, fill(k, i), page);
			first = pfn_of(src);
			if (first && (kflags(first) >> 15 & 1))
				break;		/* a compound head: a large folio */
			first = 0;
		}
		if (!first) {
			printf("%3zu | cannot fault a %lu kB folio\n", k, size_kb);
			munmap(resv, 5 * pmd);
			return -1;
		}
		if (mremap(src, size, size, MREMAP_MAYMOVE | MREMAP_FIXED, dst) != dst) {
			printf("%3zu | mremap: %s\n", k, strerror(errno));
			munmap(resv, 5 * pmd);
			return -1;
		}
		for (size_t i = 0; i < nr; i++) {
			uint64_t f;

			pfn[i] = pfn_of(dst + i * page);
			f = kflags(pfn[i]);
			contig &= pfn[i] == first + i;
			heads &= i ? (f >> 16 & 1) : (f >> 15 & 1);
		}
		madvise(dst, size, MADV_FREE);
		split0 = stat_read(size_kb, "split_deferred");
		madvise(dst, size, MADV_PAGEOUT);
		for (size_t i = 0; i < nr; i++) {
			uint64_t now_pfn = pfn_of(dst + i * page);
			char *pg = dst + i * page, want = now_pfn ? fill(k, i) : 0;
			int ok = !now_pfn || now_pfn == pfn[i];

			for (size_t b = 0; ok && b < page; b++)
				ok = pg[b] == want;
			/* reading a discarded page maps the zero page: fine */
			gone += !now_pfn;
			kept += !!now_pfn;
			bad += !ok;
		}
		printf("%3zu | %#10llx | %-10s | %-10s | %9zu %4zu %3zu | +%ld\n",
		       k, (unsigned long long)first, contig ? "yes" : "NO",
		       heads ? "ok" : "WRONG", gone, kept, bad,
		       stat_read(size_kb, "split_deferred") - split0);
		munmap(resv, 5 * pmd);
		if (kmsg_bad())
			bad++;
		bad_offsets += bad > 0 || !contig || !heads;
	}
	return bad_offsets;
}

int main(int argc, char **argv)
{
	unsigned long sizes[16], kb;
	int n = 0, bad = 0, ran = 0;
	char buf[128];

	page = sysconf(_SC_PAGESIZE);
	if (argc > 2 || (argc == 2 && strcmp(argv[1], "all") &&
			 (!(kb = strtoul(argv[1], NULL, 0)) || (kb & (kb - 1))))) {
		fprintf(stderr, "usage: %s [SIZE_KB|all]  (default 64)\n", argv[0]);
		return 2;
	}
	if (sysfs_read(THP "/hpage_pmd_size", buf, sizeof(buf)) < 0) {
		printf("verdict: cannot run: no THP sysfs\n");
		return 4;
	}
	pmd = atol(buf);
	pm_fd = open("/proc/self/pagemap", O_RDONLY);
	kpf_fd = open("/proc/kpageflags", O_RDONLY);
	if (pm_fd < 0 || kpf_fd < 0) {
		printf("verdict: cannot run: /proc/self/pagemap or /proc/kpageflags "
		       "unreadable (root needed)\n");
		return 4;
	}
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);
	if (argc == 2 && !strcmp(argv[1], "all")) {
		for (kb = 2 * page >> 10; kb < pmd >> 10 && n < 16; kb *= 2) {
			snprintf(buf, sizeof(buf), THP "/hugepages-%lukB/enabled", kb);
			if (!access(buf, F_OK))
				sizes[n++] = kb;
		}
	} else {
		sizes[n++] = argc == 2 ? strtoul(argv[1], NULL, 0) : 64;
	}
	for (int i = 0; i < n; i++) {
		int r;

		if (sizes[i] << 10 >= pmd || sizes[i] << 10 < 2 * page) {
			printf("%lu kB: not a size that PTEs map\n", sizes[i]);
			continue;
		}
		r = one_size(sizes[i]);
		ran += r >= 0;
		bad += r > 0 ? r : 0;
	}
	restore();
	if (bad) {
		printf("verdict: REPRODUCED: %d offsets with a broken folio, wrong "
		       "data/PFN after reclaim or a kernel bug line\n", bad);
		return 1;
	}
	if (!ran) {
		printf("verdict: cannot run: no folio could be built\n");
		return 4;
	}
	printf("verdict: OK: every offset contiguous, every page discarded or "
	       "kept intact after lazyfree reclaim, kernel log clean\n");
	return 0;
}
