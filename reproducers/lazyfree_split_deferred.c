/*
 * Lazyfree reclaim of mTHP: is a clean MADV_FREE'd large folio discarded
 * whole, or unmapped PTE by PTE and queued for a deferred split?
 *
 * Thread: Barry Song, "mm: batched unmap lazyfree large folios during
 * reclamation" (v2..v4, merged for 6.15), patch 3/4 "Support batched unmap
 * for lazyfree large folios during reclamation". Its micro-benchmark,
 * redone here: fill 128 MiB of 64 KiB folios, MADV_FREE, time
 * MADV_PAGEOUT and read hugepages-64kB/stats/split_deferred around it.
 *
 * Expected output:
 *   without the batching (< 6.15): "split_deferred +2048" every round (one
 *     per folio), reclaim ~2.5x slower (seed: 0.17 s), exit 1;
 *   with it (6.15+): "split_deferred +0", (seed: 0.07 s), exit 0.
 * The times are printed for reference only; the verdict is the counter.
 *
 *   cc lazyfree_split_deferred.c && sudo ./a.out [SIZE_KB [MEM_MB [ROUNDS]]]
 *
 * Needs root (mTHP sysfs). Sets hugepages-SIZEkB/enabled to madvise and
 * the other sizes to never for the run; every setting is put back at exit,
 * also on SIGINT/SIGTERM/SIGHUP. Exit: 0 behaves, 1 reproduced, 4 cannot
 * run here (reason printed).
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

static long vmstat(const char *name)
{
	char key[64];
	long v, r = -1;
	FILE *f = fopen("/proc/vmstat", "r");

	while (f && fscanf(f, "%63s %ld", key, &v) == 2)
		if (!strcmp(key, name))
			r = v;
	if (f)
		fclose(f);
	return r;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	unsigned long size_kb = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	unsigned long mem_mb = argc > 2 ? strtoul(argv[2], NULL, 0) : 128;
	int rounds = argc > 3 ? atoi(argv[3]) : 5, split_rounds = 0;
	size_t len = mem_mb << 20, nr_folios = len / (size_kb << 10);
	char pmd[32] = "";
	const char *why;

	if (argc > 4 || !size_kb || (size_kb & (size_kb - 1)) || !mem_mb ||
	    rounds < 1) {
		fprintf(stderr, "usage: %s [SIZE_KB (power of two, default 64) "
			"[MEM_MB (128) [ROUNDS (5)]]]\n", argv[0]);
		return 2;
	}
	sysfs_read(THP "/hpage_pmd_size", pmd, sizeof(pmd));
	if (atol(pmd) && size_kb >= (unsigned long)atol(pmd) / 1024) {
		printf("%lu kB is PMD size or larger: PMD-mapped THP are not "
		       "unmapped by PTEs\nverdict: cannot run: pick a smaller size\n",
		       size_kb);
		return 4;
	}
	why = mthp_only(size_kb);
	if (why || stat_read(size_kb, "split_deferred") < 0) {
		printf("verdict: cannot run: %lu kB mTHP: %s\n", size_kb,
		       why ? why : "no stats/split_deferred (kernel < 6.11?)");
		return 4;
	}
	printf("%lu MiB of %lu kB lazyfree folios (%zu folios), %d rounds:\n",
	       mem_mb, size_kb, nr_folios, rounds);
	for (int r = 0; r < rounds; r++) {
		long alloc0 = stat_read(size_kb, "anon_fault_alloc"), split0,
		     freed0, split, freed, alloc;
		char *p = mmap(NULL, len + (2 << 20), PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		double t0, t;

		if (p == MAP_FAILED) {
			printf("verdict: cannot run: mmap %zu bytes: %s\n", len,
			       strerror(errno));
			return 4;
		}
		p = (char *)(((uintptr_t)p + (2 << 20) - 1) & ~((2UL << 20) - 1));
		madvise(p, len, MADV_HUGEPAGE);
		memset(p, 1, len);
		alloc = stat_read(size_kb, "anon_fault_alloc") - alloc0;
		if (alloc < (long)nr_folios * 9 / 10) {
			printf("verdict: cannot run: only %ld of %zu folios were "
			       "%lu kB (memory fragmented?)\n", alloc, nr_folios,
			       size_kb);
			return 4;
		}
		madvise(p, len, MADV_FREE);
		split0 = stat_read(size_kb, "split_deferred");
		freed0 = vmstat("pglazyfreed");
		t0 = now();
		madvise(p, len, MADV_PAGEOUT);
		t = now() - t0;
		split = stat_read(size_kb, "split_deferred") - split0;
		freed = vmstat("pglazyfreed") - freed0;
		printf("round %d: %ld large folios faulted, reclaim %.6f s, "
		       "split_deferred +%ld, pglazyfreed +%ld pages\n",
		       r + 1, alloc, t, split, freed);
		split_rounds += split > 0;
		munmap(p, len);
	}
	restore();
	if (split_rounds) {
		printf("verdict: REPRODUCED: lazyfree reclaim queued %lu kB folios "
		       "for deferred split in %d of %d rounds (PTE-by-PTE unmap, "
		       "no batching)\n", size_kb, split_rounds, rounds);
		return 1;
	}
	printf("verdict: OK: clean lazyfree %lu kB folios discarded whole, "
	       "split_deferred unchanged in all %d rounds\n", size_kb, rounds);
	return 0;
}
