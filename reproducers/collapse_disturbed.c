/*
 * Collapse over disturbed PTEs: MADV_COLLAPSE of a range whose page table
 * maps a PMD-sized shmem folio by PTEs, where some PTEs map other pages
 * (MAP_PRIVATE copies written by the process) or nothing (holes).
 *
 * Thread: Dev Jain, "khugepaged: Optimize collapse_pte_mapped_thp() for
 * large folios by PTE batching" (v2 2/3): the PTEs are now cleared in
 * batches. Lorenzo Stoakes asked why every PTE is still checked; Dev Jain:
 * "We need to check for all PTEs whether they map the right page or not.
 * This may get disturbed due to mremap and stuff." The kernel's own
 * comment: "uprobe, debugger, or MAP_PRIVATE may change the page table,
 * but the new page will not be a subpage of hpage".
 *
 * Case 1, disturbed: MAP_PRIVATE of the memfd, PTE-mapped; three pages
 *   written (now private anonymous copies), one zapped. MADV_COLLAPSE must
 *   give up (or keep every private page): the private data must survive,
 *   the file must not see it.
 * Case 2, undisturbed with holes: MAP_SHARED, PTE-mapped, two pages zapped.
 *   MADV_COLLAPSE should map the folio by its PMD (ShmemPmdMapped 2048 kB),
 *   data intact. (Printed; only a data or kernel-log problem counts.)
 *
 * Expected output, with or without the batching: case 1 "MADV_COLLAPSE:
 * failed (EINVAL)" and "private pages kept", case 2 "PMD-mapped", exit 0.
 * A batch that skips the per-PTE check replaces private copies with the
 * file's pages (data lost) or leaves "Bad page map"/"Bad rss-counter" in
 * the kernel log: exit 1.
 *
 *   cc collapse_disturbed.c && sudo ./a.out
 *
 * Needs root for /dev/kmsg (it runs without, unchecked log) and a kernel
 * with MADV_COLLAPSE (6.1+) of shmem. Changes no setting: MADV_COLLAPSE
 * ignores the sysfs THP modes. Exit: 0 behaves, 1 reproduced, 4 cannot
 * run here (reason printed).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

static size_t page, pmd;
static int kmsg_fd = -1;

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

/* ShmemPmdMapped (kB) of the VMA that holds addr */
static long pmd_mapped_kb(void *addr)
{
	char line[256];
	unsigned long lo, hi;
	long v = -1, inside = 0;
	FILE *f = fopen("/proc/self/smaps", "r");

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "%lx-%lx ", &lo, &hi) == 2)
			inside = (uintptr_t)addr >= lo && (uintptr_t)addr < hi;
		else if (inside && !strncmp(line, "ShmemPmdMapped:", 15))
			v = atol(line + 15);
	}
	if (f)
		fclose(f);
	return v;
}

static char file_byte(size_t i)
{
	return 'a' + i % 26;
}

static char *map_aligned(int fd, int flags)
{
	char *raw = mmap(NULL, 2 * pmd, PROT_NONE,
			 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	char *p = (char *)(((uintptr_t)raw + pmd - 1) & ~(pmd - 1));

	if (raw == MAP_FAILED)
		return NULL;
	return mmap(p, pmd, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd, 0) ==
	       p ? p : NULL;
}

/* Map PTE by PTE: fault every page with THP off, then allow collapse. */
static void fault_by_ptes(char *p)
{
	madvise(p, pmd, MADV_NOHUGEPAGE);
	for (size_t i = 0; i < pmd; i += page)
		(void)*(volatile char *)(p + i);
	madvise(p, pmd, MADV_HUGEPAGE);
}

static int collapse(char *p, char *res, size_t len)
{
	int r = -1;

	for (int attempt = 0; attempt < 3 && r; attempt++) {
		r = madvise(p, pmd, MADV_COLLAPSE);
		if (r && errno != EAGAIN)
			break;
	}
	snprintf(res, len, r ? "failed (%s)" : "succeeded", strerror(errno));
	return r;
}

int main(int argc, char **argv)
{
	static const size_t priv[] = { 3, 100, 511 }, holes1[] = { 200 },
			    holes2[] = { 7, 300 };
	size_t wrong_priv = 0, wrong_file = 0, wrong2 = 0, leaked = 0;
	char buf[32], res1[64], res2[64];
	long before1, after1, before2, after2;
	char *a, *b, *c;
	int fd, bad_log;

	(void)argv;
	if (argc > 1) {
		fprintf(stderr, "usage: %s   (no arguments)\n", argv[0]);
		return 2;
	}
	page = sysconf(_SC_PAGESIZE);
	fd = open("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", O_RDONLY);
	if (fd < 0 || read(fd, buf, sizeof(buf) - 1) <= 0) {
		printf("verdict: cannot run: no THP sysfs\n");
		return 4;
	}
	close(fd);
	pmd = atol(buf);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (kmsg_fd >= 0)
		lseek(kmsg_fd, 0, SEEK_END);

	/* the file: a memfd collapsed into one PMD-sized folio */
	fd = memfd_create("collapse_disturbed", 0);
	if (fd < 0 || ftruncate(fd, pmd) || !(a = map_aligned(fd, MAP_SHARED))) {
		printf("verdict: cannot run: memfd: %s\n", strerror(errno));
		return 4;
	}
	for (size_t i = 0; i < pmd; i++)
		a[i] = file_byte(i / page);
	if (collapse(a, res1, sizeof(res1)) || pmd_mapped_kb(a) != (long)(pmd >> 10)) {
		printf("verdict: cannot run: MADV_COLLAPSE of a memfd: %s "
		       "(ShmemPmdMapped %ld kB)\n", res1, pmd_mapped_kb(a));
		return 4;
	}
	printf("memfd of %zu kB collapsed into one PMD-sized shmem folio\n",
	       pmd >> 10);

	/* case 1: MAP_PRIVATE, PTE-mapped, private copies and a hole */
	b = map_aligned(fd, MAP_PRIVATE);
	if (!b) {
		printf("verdict: cannot run: second mapping: %s\n", strerror(errno));
		return 4;
	}
	fault_by_ptes(b);
	for (size_t i = 0; i < 3; i++)
		memset(b + priv[i] * page, 'P', page);
	madvise(b + holes1[0] * page, page, MADV_DONTNEED);
	before1 = pmd_mapped_kb(b);
	collapse(b, res1, sizeof(res1));
	after1 = pmd_mapped_kb(b);
	for (size_t i = 0; i < pmd; i++) {
		size_t pg = i / page;
		int is_priv = pg == priv[0] || pg == priv[1] || pg == priv[2];

		if (is_priv)
			wrong_priv += b[i] != 'P';
		else
			wrong_file += b[i] != file_byte(pg);
		leaked += a[i] != file_byte(pg);
	}
	printf("case 1, MAP_PRIVATE with pages %zu, %zu, %zu written (private "
	       "copies) and page %zu zapped:\n  ShmemPmdMapped %ld kB, "
	       "MADV_COLLAPSE %s, ShmemPmdMapped %ld kB after\n  private pages: "
	       "%zu bytes wrong; file pages: %zu bytes wrong; the file itself: "
	       "%zu bytes changed\n", priv[0], priv[1], priv[2], holes1[0],
	       before1, res1, after1, wrong_priv, wrong_file, leaked);

	/* case 2: MAP_SHARED, PTE-mapped, two holes */
	c = map_aligned(fd, MAP_SHARED);
	if (!c) {
		printf("verdict: cannot run: third mapping: %s\n", strerror(errno));
		return 4;
	}
	fault_by_ptes(c);
	for (size_t i = 0; i < 2; i++)
		madvise(c + holes2[i] * page, page, MADV_DONTNEED);
	before2 = pmd_mapped_kb(c);
	collapse(c, res2, sizeof(res2));
	after2 = pmd_mapped_kb(c);
	for (size_t i = 0; i < pmd; i++)
		wrong2 += c[i] != file_byte(i / page);
	printf("case 2, MAP_SHARED with pages %zu and %zu zapped:\n  "
	       "ShmemPmdMapped %ld kB, MADV_COLLAPSE %s, ShmemPmdMapped %ld kB "
	       "after (%s); %zu bytes wrong\n", holes2[0], holes2[1], before2,
	       res2, after2, after2 == (long)(pmd >> 10) ? "PMD-mapped" :
	       "still PTE-mapped", wrong2);

	bad_log = kmsg_bad();
	if (wrong_priv || wrong_file || leaked || wrong2 || bad_log) {
		printf("verdict: REPRODUCED: collapse over disturbed PTEs %s\n",
		       bad_log ? "left a kernel bug line in the log" :
		       "lost or leaked data");
		return 1;
	}
	if (kmsg_fd < 0)
		printf("(kernel log not checked: /dev/kmsg unreadable)\n");
	printf("verdict: OK: collapse kept every private copy and hole "
	       "(MADV_COLLAPSE %s), the undisturbed range %s, data intact\n",
	       res1, after2 == (long)(pmd >> 10) ? "was PMD-mapped" :
	       "stayed PTE-mapped");
	return 0;
}
