/*
 * A PMD-mapped lazyfree THP written again after MADV_FREE (redirtied):
 * reclaim must keep it. Does it split the PMD into PTEs on the way?
 *
 * Thread: Barry Song, "mm: batched unmap lazyfree large folios during
 * reclamation", patch 4/4 "mm: Avoid splitting pmd for lazyfree pmd-mapped
 * THP in try_to_unmap" (Baolin Wang and Lance Yang found that
 * try_to_unmap_one() split the PMD of a redirtied lazyfree THP and then
 * walked its 512 PTEs; the patch skips it 3.5x faster, PMD intact).
 *
 * Expected output:
 *   with the change (measured: 7.2): "thp_split_pmd +0", AnonHugePages
 *     2048 kB after reclaim, data intact, exit 0;
 *   without it (measured by the suite: 6.12, 6.18): "thp_split_pmd +1", AnonHugePages
 *     0 kB after reclaim (the folio is PTE-mapped now), data intact, exit 1.
 * Data lost (a redirtied page discarded) is reported as well: exit 1.
 *
 *   cc lazyfree_pmd_redirty.c && sudo ./a.out [ROUNDS]
 *
 * Needs root. Sets the PMD size's hugepages-<size>kB/enabled to madvise
 * and the other sizes to never; all put back at exit, also on
 * SIGINT/SIGTERM/SIGHUP. Exit: 0 behaves, 1 reproduced, 4 cannot run here.
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

/* AnonHugePages (kB) of the VMA that holds addr */
static long anon_huge_kb(void *addr)
{
	char line[256];
	unsigned long lo, hi;
	long v = -1, inside = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (inside && !strncmp(line, "AnonHugePages:", 14))
			v = atol(line + 14);
	}
	if (f)
		fclose(f);
	return v;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3, split_rounds = 0, lost = 0;
	size_t page = sysconf(_SC_PAGESIZE), pmd;
	char buf[32];
	const char *why;

	if (argc > 2 || rounds < 1) {
		fprintf(stderr, "usage: %s [ROUNDS (default 3)]\n", argv[0]);
		return 2;
	}
	if (sysfs_read(THP "/hpage_pmd_size", buf, sizeof(buf)) < 0) {
		printf("verdict: cannot run: no THP sysfs\n");
		return 4;
	}
	pmd = atol(buf);
	why = mthp_only(pmd >> 10);
	if (why) {
		printf("verdict: cannot run: %zu kB THP: %s\n", pmd >> 10, why);
		return 4;
	}
	for (int r = 0; r < rounds; r++) {
		char *raw = mmap(NULL, 2 * pmd, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), *p;
		size_t victim = (pmd / page) / 2, wrong = 0;
		long before, split0, freed0, split, freed, after;
		double t0, t;

		if (raw == MAP_FAILED) {
			printf("verdict: cannot run: mmap: %s\n", strerror(errno));
			return 4;
		}
		p = (char *)(((uintptr_t)raw + pmd - 1) & ~(pmd - 1));
		madvise(p, pmd, MADV_HUGEPAGE);
		for (size_t i = 0; i < pmd; i += page)
			memset(p + i, 'A' + (i / page) % 26, page);
		before = anon_huge_kb(p);
		if (before != (long)(pmd >> 10)) {
			printf("verdict: cannot run: no PMD-mapped THP faulted "
			       "(AnonHugePages %ld kB)\n", before);
			return 4;
		}
		madvise(p, pmd, MADV_FREE);
		p[victim * page] = 'z';		/* redirty one subpage */
		split0 = vmstat("thp_split_pmd");
		freed0 = vmstat("pglazyfreed");
		t0 = now();
		madvise(p, pmd, MADV_PAGEOUT);
		t = now() - t0;
		split = vmstat("thp_split_pmd") - split0;
		freed = vmstat("pglazyfreed") - freed0;
		after = anon_huge_kb(p);
		for (size_t i = 0; i < pmd; i++)
			wrong += p[i] != (i == victim * page ? 'z' : 'A' + (int)((i / page) % 26));
		printf("round %d: PMD-mapped %zu kB THP, MADV_FREE, subpage %zu "
		       "written, MADV_PAGEOUT %.6f s: thp_split_pmd +%ld, "
		       "pglazyfreed +%ld, AnonHugePages %ld -> %ld kB, %zu bytes "
		       "wrong\n", r + 1, pmd >> 10, victim, t, split, freed,
		       before, after, wrong);
		split_rounds += split > 0;
		lost += wrong > 0;
		munmap(raw, 2 * pmd);
	}
	restore();
	if (lost) {
		printf("verdict: REPRODUCED: data of a redirtied lazyfree THP lost "
		       "in %d of %d rounds\n", lost, rounds);
		return 1;
	}
	if (split_rounds) {
		printf("verdict: REPRODUCED: reclaim split the PMD of a redirtied "
		       "lazyfree THP in %d of %d rounds (no 'avoid splitting pmd "
		       "for lazyfree pmd-mapped THP'); data kept\n",
		       split_rounds, rounds);
		return 1;
	}
	printf("verdict: OK: redirtied lazyfree THP kept PMD-mapped, no PMD "
	       "split, data intact in all %d rounds\n", rounds);
	return 0;
}
