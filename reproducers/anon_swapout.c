/*
 * Swap-out of anonymous mTHP: is each large folio written to swap whole
 * (contiguous swap entries, no split, no fallback) and read back intact,
 * and how long does the unmap take?
 *
 * Thread: Dev Jain, "Optimize anonymous large folio unmapping" (v4, May
 * 2026): try_to_unmap_one() clears the PTEs of an anonymous large folio
 * and sets its swap PTEs in one batch. Its benchmark, redone here: 256 MiB
 * of 64 KiB folios, time MADV_PAGEOUT, "Mean: ... ns, std dev: ...%".
 * The memory is filled with non-zero, non-repeating data: zero-filled
 * pages skip swap I/O (they only move swpout_zero).
 *
 * Expected output: on any kernel with mTHP swap-out (6.10+), every round
 * "swpout +4096 folios, swpout_fallback +0", all pages swapped with
 * contiguous entries per folio, data intact, exit 0. A kernel that splits
 * the folios (swpout_fallback moves, thp_split_pmd or split moves) or loses
 * data exits 1. The batching itself is an optimization that no counter
 * shows: with it the mean time drops (seed, arm64: 37.4 ms -> 17.4 ms;
 * x86: 55.0 -> 51.9 ms). Compare two kernels' "Mean" lines, or use the
 * benchmark (tools/folio-bench, workload anon-swapout) for statistics.
 *
 *   cc anon_swapout.c && sudo ./a.out [SIZE_KB [MEM_MB [ROUNDS]]]
 *
 * Needs root. Without active swap it makes a temporary zram swap device
 * of three times MEM_MB (removed at exit). Sets hugepages-SIZEkB/enabled
 * to madvise, the other sizes to never; all put back at exit, also on
 * SIGINT/SIGTERM/SIGHUP. Some folios falling back to small swap entries
 * when swap space is fragmented (swpout_fallback) is noted, not a failure.
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
#include <sys/swap.h>
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

static int zram_dev = -1, zram_on;
static char zram_path[32];

static void restore(void)
{
	char buf[16];

	for (int i = 0; i < nsaved; i++)
		sysfs_write(saved[i].path, saved[i].val);
	nsaved = 0;
	if (zram_on)
		swapoff(zram_path);
	zram_on = 0;
	if (zram_dev >= 0) {
		snprintf(buf, sizeof(buf), "%d", zram_dev);
		sysfs_write("/sys/class/zram-control/hot_remove", buf);
	}
	zram_dev = -1;
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

/* ---- a temporary zram swap device when none is active --------------------- */
static int swap_active(void)
{
	char line[256];
	int n = 0;
	FILE *f = fopen("/proc/swaps", "r");

	while (f && fgets(line, sizeof(line), f))
		n++;
	if (f)
		fclose(f);
	return n > 1;
}

static const char *zram_up(size_t bytes)
{
	char buf[32], path[64], cmd[96];

	if (sysfs_read("/sys/class/zram-control/hot_add", buf, sizeof(buf)) < 0)
		return "no swap active and no zram (modprobe zram, or swapon a device)";
	zram_dev = atoi(buf);
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", zram_dev);
	snprintf(buf, sizeof(buf), "%zu", bytes);
	if (sysfs_write(path, buf))
		return "cannot size the zram device";
	snprintf(zram_path, sizeof(zram_path), "/dev/zram%d", zram_dev);
	snprintf(cmd, sizeof(cmd), "mkswap %s >/dev/null 2>&1", zram_path);
	if (system(cmd) || swapon(zram_path, 0))
		return "mkswap/swapon on the zram device failed";
	zram_on = 1;
	printf("temporary swap: %s, %zu MiB\n", zram_path, bytes >> 20);
	return NULL;
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

/* square root without libm: plain `cc file.c` must link */
static double root(double v)
{
	double x = v > 1 ? v : 1;

	for (int i = 0; i < 200 && v > 0; i++)
		x = (x + v / x) / 2;
	return v > 0 ? x : 0;
}

/* splitmix64: non-zero, non-repeating, incompressible */
static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31)) | 1;
}

int main(int argc, char **argv)
{
	unsigned long size_kb = argc > 1 ? strtoul(argv[1], NULL, 0) : 64;
	unsigned long mem_mb = argc > 2 ? strtoul(argv[2], NULL, 0) : 256;
	int rounds = argc > 3 ? atoi(argv[3]) : 5, bad_rounds = 0, fallback_rounds = 0;
	size_t len = mem_mb << 20, page = sysconf(_SC_PAGESIZE);
	size_t nr_pages = len / page, per = (size_kb << 10) / page;
	size_t nr_folios = len / (size_kb << 10);
	int pm = open("/proc/self/pagemap", O_RDONLY);
	double sum = 0, sum2 = 0;
	const char *why;

	if (argc > 4 || !size_kb || (size_kb & (size_kb - 1)) ||
	    (size_kb << 10) <= page || !mem_mb || rounds < 1) {
		fprintf(stderr, "usage: %s [SIZE_KB (power of two > page, default "
			"64) [MEM_MB (256) [ROUNDS (5)]]]\n", argv[0]);
		return 2;
	}
	why = mthp_only(size_kb);
	if (!why && stat_read(size_kb, "swpout") < 0)
		why = "no per-size stats/swpout (kernel < 6.10?)";
	if (!why && pm < 0)
		why = "cannot open /proc/self/pagemap";
	if (!why && !swap_active())
		why = zram_up(3 * len);
	if (why) {
		printf("verdict: cannot run: %lu kB anon mTHP swap-out: %s\n",
		       size_kb, why);
		return 4;
	}
	printf("%lu MiB of %lu kB anonymous folios (%zu folios), %d rounds:\n",
	       mem_mb, size_kb, nr_folios, rounds);
	for (int r = 0; r < rounds; r++) {
		long alloc0 = stat_read(size_kb, "anon_fault_alloc");
		long out0 = stat_read(size_kb, "swpout");
		long fb0 = stat_read(size_kb, "swpout_fallback");
		long split0 = stat_read(size_kb, "split");
		long pmd0 = vmstat("thp_split_pmd"), zero0 = vmstat("swpout_zero");
		long alloc, out, fb, split, pmdsplit, zero;
		size_t swapped = 0, broken = 0, corrupt = 0;
		char *raw = mmap(NULL, len + (2 << 20), PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		uint64_t *w, *pme = malloc(nr_pages * 8);
		char *p;
		double t0, t;

		if (raw == MAP_FAILED || !pme) {
			printf("verdict: cannot run: no memory for %zu bytes\n", len);
			return 4;
		}
		p = (char *)(((uintptr_t)raw + (2 << 20) - 1) & ~((2UL << 20) - 1));
		madvise(p, len, MADV_HUGEPAGE);
		w = (uint64_t *)p;
		for (size_t i = 0; i < len / 8; i++)
			w[i] = mix(((uint64_t)r << 40) + i);
		alloc = stat_read(size_kb, "anon_fault_alloc") - alloc0;
		t0 = now();
		madvise(p, len, MADV_PAGEOUT);
		t = now() - t0;
		out = stat_read(size_kb, "swpout") - out0;
		fb = stat_read(size_kb, "swpout_fallback") - fb0;
		split = stat_read(size_kb, "split") - split0;
		pmdsplit = vmstat("thp_split_pmd") - pmd0;
		zero = zero0 < 0 ? 0 : vmstat("swpout_zero") - zero0;
		/* swap entries: bit 62 swapped, bits 5-54 the offset */
		pread(pm, pme, nr_pages * 8, (uintptr_t)p / page * 8);
		for (size_t i = 0; i < nr_pages; i++) {
			uint64_t off = (pme[i] & ((1ULL << 55) - 1)) >> 5;
			uint64_t off0 = (pme[i - i % per] & ((1ULL << 55) - 1)) >> 5;

			swapped += !!(pme[i] & (1ULL << 62));
			broken += i % per && off != off0 + i % per;
		}
		for (size_t i = 0; i < len / 8; i++)
			corrupt += w[i] != mix(((uint64_t)r << 40) + i);
		printf("round %d: %ld folios faulted, MADV_PAGEOUT %.0f ns; swpout "
		       "+%ld folios, swpout_fallback +%ld, split +%ld, thp_split_pmd "
		       "+%ld, swpout_zero +%ld; %zu/%zu pages swapped, %zu not "
		       "contiguous in their folio's swap entries; %zu words wrong "
		       "after swap-in\n", r + 1, alloc, t * 1e9, out, fb, split,
		       pmdsplit, zero, swapped, nr_pages, broken, corrupt);
		if (alloc < (long)nr_folios * 9 / 10) {
			printf("verdict: cannot run: only %ld of %zu folios were "
			       "%lu kB (memory fragmented?)\n", alloc, nr_folios,
			       size_kb);
			return 4;
		}
		/*
		 * A fallback (no free swap cluster for a whole folio) is the
		 * kernel's normal answer to fragmented swap space: counted
		 * apart. A problem: data lost, pages left unswapped, no folio
		 * swapped whole, or a whole folio's entries not contiguous.
		 */
		fallback_rounds += fb > 0;
		bad_rounds += corrupt || swapped < nr_pages * 9 / 10 || out <= 0 ||
			      (!fb && (broken || split > 0 || out < alloc));
		sum += t * 1e9;
		sum2 += t * 1e9 * t * 1e9;
		munmap(raw, len + (2 << 20));
		free(pme);
	}
	{
		double mean = sum / rounds;
		double var = rounds > 1 ? (sum2 - rounds * mean * mean) / (rounds - 1) : 0;

		printf("Mean: %.0f ns, std dev: %.1f%% (%d rounds)\n", mean,
		       var > 0 ? 100 * root(var) / mean : 0.0, rounds);
	}
	restore();
	if (bad_rounds) {
		printf("verdict: REPRODUCED: %lu kB folios were split on swap-out, "
		       "not swapped whole or lost data in %d of %d rounds\n",
		       size_kb, bad_rounds, rounds);
		return 1;
	}
	if (fallback_rounds)
		printf("note: in %d rounds some folios fell back to small swap "
		       "entries (swpout_fallback: swap space fragmented)\n",
		       fallback_rounds);
	printf("verdict: OK: %lu kB folios swapped out whole (contiguous "
	       "entries, no split) and read back intact\n", size_kb);
	return 0;
}
