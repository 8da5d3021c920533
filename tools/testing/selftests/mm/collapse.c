// SPDX-License-Identifier: GPL-2.0
/*
 * Collapse of PTE-mapped large folios into one PMD mapping, by MADV_COLLAPSE
 * and by khugepaged.
 *
 * A shmem or file range whose page cache already holds one PMD-sized folio
 * is collapsed in place: collapse_pte_mapped_thp() checks that PTE i maps
 * page i of that folio, clears the PTEs and their rmap in batches, and maps
 * the folio by a PMD. Were a PTE that maps something else (a COW'd copy, a
 * page moved by mremap) let through, the PMD would show the process other
 * data than it saw: silent corruption. Small shmem folios are first copied
 * into a new PMD-sized folio (collapse_file()); anonymous memory is always
 * copied, PTE by PTE (collapse_huge_page()).
 *
 * Every test notes what each virtual page of its mapping reads, collapses,
 * and checks that each page still reads exactly that; then what the kernel
 * did: smaps' PMD-mapped kB, the folio in kpageflags, how often each page
 * is mapped (kpagecount: the rmap the batch took away), the RSS counters
 * against pagemap, thp_collapse_alloc and khugepaged's pages_collapsed;
 * and, in the teardown, the kernel log. Where the kernel may refuse
 * (permuted PTEs, COW'd pages, a misaligned file offset, a VMA too short),
 * its answer is logged and the data decide. MADV_COLLAPSE tests run with
 * khugepaged stopped, so that only the test collapses and the counters
 * are exact.
 *
 * Backings: anonymous memory and memfd (shmem) at the PMD size and at
 * smaller mTHP sizes, and a tmpfs mounted huge=always in a private mount
 * namespace made in main().
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <time.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "folio_test.h"

#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

/* How long khugepaged may take, at 10 ms between scans (loaded TCG hosts). */
#define KHUGEPAGED_WAIT_S 40

/* ---- the huge=always tmpfs ------------------------------------------------- */

#define TMPFS_DIR "/tmp"
static bool tmpfs_mounted;
static char tmpfs_why[200] = "not mounted (needs root)";

/*
 * In main(), before the harness forks: every test shares the private mount
 * namespace, and the tmpfs goes when the last of them exits.
 */
static void tmpfs_prepare(void)
{
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("collapse", TMPFS_DIR, "tmpfs", 0, "huge=always,mode=0700")) {
		snprintf(tmpfs_why, sizeof(tmpfs_why),
			 "tmpfs -o huge=always on %s in a private mount namespace: %s",
			 TMPFS_DIR, strerror(errno));
		return;
	}
	tmpfs_mounted = true;
}

/* ---- the mapping under test ------------------------------------------------ */

enum backing { ANON, MEMFD, TMPFS };

/* What one virtual page must read: the pattern of (seed, index), or zeros. */
struct want {
	uint64_t seed, index;
	bool zero;
	bool hole;		/* not mapped: not read before the collapse */
};

/*
 * The reservation, in PMDs: 0 guard, 1-3 the mapping (the range to
 * collapse starts at PMD 1), 5-8 staging for mappings built elsewhere and
 * moved in, 9 a scratch page for mremap swaps.
 */
#define RESV_PMDS 10
#define MAX_PAGES (4 * (pmdsize / pagesize))

struct region {
	enum backing backing;
	size_t size;		/* the folio size under test */
	int fd;			/* the file; -1 for anonymous memory */
	char *resv;		/* RESV_PMDS PMDs, PMD-aligned, PROT_NONE */
	char *addr;		/* the mapping whose pages are checked */
	size_t nr;
	char *caddr;		/* the PMD-aligned range collapsed, inside it */
	size_t clen;
	uint64_t seed;		/* page i of the file (anon: of the mapping) */
	uint64_t seed2;		/* data written later, by the test */
	struct want *want;	/* per page of the mapping */
	char why[768];
};

static char *stage(struct region *r)
{
	return r->resv + 5 * pmdsize;
}

static char *scratch(struct region *r)
{
	return r->resv + 9 * pmdsize;
}

/* Give [addr, addr + len) back to the PROT_NONE reservation. */
static void unreserve(char *addr, size_t len)
{
	mmap(addr, len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED |
	     MAP_NORESERVE, -1, 0);
}

static int region_init(struct region *r, enum backing backing, size_t size)
{
	memset(r, 0, sizeof(*r));
	r->backing = backing;
	r->size = size;
	r->fd = -1;
	r->seed = pattern_seed(1);
	r->seed2 = pattern_seed(2);
	r->want = calloc(MAX_PAGES, sizeof(*r->want));
	r->resv = mmap_aligned(RESV_PMDS * pmdsize, pmdsize, PROT_NONE);
	if (r->resv == MAP_FAILED)
		r->resv = NULL;
	return r->want && r->resv ? 0 : -ENOMEM;
}

static void region_fini(struct region *r)
{
	if (r->resv)
		munmap(r->resv, RESV_PMDS * pmdsize);
	if (r->fd >= 0)
		close(r->fd);
	free(r->want);
	r->want = NULL;
	r->resv = NULL;
	r->fd = -1;
}

static void read_all(const char *addr, size_t nr)
{
	for (size_t i = 0; i < nr; i++)
		(void)*(volatile const char *)(addr + i * pagesize);
}

/*
 * Every folio-sized chunk of [addr, addr + len) is one folio of the size.
 * 0, or -EAGAIN and why.
 */
static int folios_check(struct region *r, char *addr, size_t len)
{
	char one[300];

	for (size_t off = 0; off < len; off += r->size) {
		struct large_folio f = {
			.addr = addr + off, .size = r->size,
			.nr = r->size / pagesize, .cross = -1,
		};

		if (folio_check(&f, one, sizeof(one))) {
			snprintf(r->why, sizeof(r->why), "no %zu kB folio at +%zu kB: %s",
				 r->size / 1024, off / 1024, one);
			return -EAGAIN;
		}
	}
	return 0;
}

/* kB of [addr, addr + len)'s VMAs mapped by PMDs (-1 if smaps is unreadable). */
static long pmd_mapped_kb(const char *addr, size_t len)
{
	struct smaps_sum s;

	if (smaps_range(addr, len, &s))
		return -1;
	return s.anon_huge + s.shmem_pmd + s.file_pmd;
}

/* The mapping is set: note its layout and that page i holds (seed, first + i). */
static void region_set(struct region *r, char *addr, size_t nr, uint64_t first,
		       size_t npmd)
{
	r->addr = addr;
	r->nr = nr;
	r->caddr = r->resv + pmdsize;
	r->clen = npmd * pmdsize;
	for (size_t i = 0; i < nr; i++)
		r->want[i] = (struct want){ .seed = r->seed, .index = first + i };
}

/*
 * Anonymous THPs off: the PMD size "never", then the top-level "enabled"
 * "never". That stops khugepaged where nothing else keeps it running: the
 * write to the top-level file starts or stops it on every kernel, a
 * per-size one does not on 6.12. (With CONFIG_READ_ONLY_THP_FOR_FS the
 * top-level value alone keeps it running.)
 */
static int anon_thp_off(void)
{
	char anon[64], now[64];
	int ret = 0;

	snprintf(anon, sizeof(anon), "hugepages-%zukB/enabled", pmdsize / 1024);
	if (!setting_get(anon, now, sizeof(now)))
		ret = setting_set(anon, "never");
	return ret ? ret : setting_set("enabled", "never");
}

/*
 * No khugepaged: on 6.18 the shmem PMD size keeps it running too. Shmem
 * gets the top-level "never" and the PMD size "inherit": MADV_COLLAPSE of
 * a memfd overrides that, but not a per-size "never" (EINVAL on 6.18).
 * Folios already made stay.
 */
static int khugepaged_off(void)
{
	char shmem[64], now[64];
	int ret = 0;

	snprintf(shmem, sizeof(shmem), "hugepages-%zukB/shmem_enabled",
		 pmdsize / 1024);
	if (!setting_get("shmem_enabled", now, sizeof(now)))
		ret = setting_set("shmem_enabled", "never");
	if (!ret && !setting_get(shmem, now, sizeof(now)))
		ret = setting_set(shmem, "inherit");
	return ret ? ret : anon_thp_off();
}

/*
 * Anonymous memory: npmd PMDs at PMD 1 of the reservation, faulted as
 * folios of the size (only that size enabled). A PMD-sized folio is then
 * mapped by PTEs through a one-page mprotect() and back. shift > 0: three
 * PMDs faulted in the staging area and moved, whole, to shift bytes below
 * PMD 1, so that folios straddle the PMD boundaries of the range (npmd = 2).
 * tail: the VMA goes on for one page that is never touched.
 */
static int anon_map(struct region *r, size_t npmd, size_t shift, bool tail)
{
	size_t len = (npmd + (shift ? 1 : 0)) * pmdsize;
	size_t vlen = len + (tail ? pagesize : 0);
	char *at = shift ? stage(r) : r->resv + pmdsize;
	int ret;

	if (mmap(at, vlen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS |
		 MAP_FIXED, -1, 0) == MAP_FAILED ||
	    madvise(at, vlen, MADV_HUGEPAGE))
		return -errno;
	pattern_fill_range(at, len / pagesize, r->seed, 0);
	ret = folios_check(r, at, len);
	if (ret)
		return ret;
	/* from here on only the test collapses */
	ret = khugepaged_off();
	if (ret)
		return ret;
	if (shift) {
		char *dst = r->resv + pmdsize - shift;

		if (mremap(at, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   dst) == MAP_FAILED)
			return -errno;
		unreserve(at, len);
		at = dst;
	} else if (r->size == pmdsize) {
		for (size_t off = 0; off < len; off += pmdsize)
			if (mprotect(at + off + pagesize, pagesize, PROT_READ) ||
			    mprotect(at + off + pagesize, pagesize,
				     PROT_READ | PROT_WRITE))
				return -errno;
	}
	region_set(r, at, len / pagesize, 0, npmd);
	return 0;
}

/* The file: npmd PMDs, page i holding (seed, i), in folios of the size. */
static int file_fill(struct region *r, size_t npmd)
{
	size_t len = npmd * pmdsize;
	char *tmp = stage(r);
	int ret;

	if (ftruncate(r->fd, len))
		return -errno;
	/* shmem folios of a size come from faults where MADV_HUGEPAGE is set */
	if (mmap(tmp, len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED,
		 r->fd, 0) == MAP_FAILED ||
	    madvise(tmp, len, MADV_HUGEPAGE))
		return -errno;
	pattern_fill_range(tmp, len / pagesize, r->seed, 0);
	ret = folios_check(r, tmp, len);
	unreserve(tmp, len);
	return ret;
}

/*
 * Map npmd PMDs of the file from byte off, at PMD 1, with flags (MAP_SHARED
 * or MAP_PRIVATE), every page read in and mapped by a PTE. Small folios
 * are PTE-mapped anyway; a PMD-sized one is faulted through a mapping one
 * page off PMD alignment and moved into place with mremap, PTEs and all.
 * (MADV_NOHUGEPAGE does not keep a huge=always tmpfs from mapping a PMD on
 * 6.1.) Then MADV_HUGEPAGE: khugepaged wants VM_HUGEPAGE, and so does
 * MADV_COLLAPSE of a memfd on 6.18 while the shmem PMD size is "advise"
 * (EINVAL without).
 */
static int file_map(struct region *r, size_t npmd, off_t off, int flags)
{
	size_t len = npmd * pmdsize;
	char *at = r->resv + pmdsize, *src = at;
	bool remap = r->size == pmdsize;

	if (remap)
		src = stage(r) + pagesize;
	if (mmap(src, len, PROT_READ | PROT_WRITE, flags | MAP_FIXED, r->fd,
		 off) == MAP_FAILED)
		return -errno;
	read_all(src, len / pagesize);
	if (remap) {
		if (mremap(src, len, len, MREMAP_MAYMOVE | MREMAP_FIXED,
			   at) == MAP_FAILED)
			return -errno;
		unreserve(src, len);
	}
	if (madvise(at, len, MADV_HUGEPAGE))
		return -errno;
	region_set(r, at, len / pagesize, off / pagesize, npmd);
	return 0;
}

/* ---- checks ------------------------------------------------------------------ */

/* What a page holds, in words: "page 7's data", "zeros", ... */
static void page_name(const struct region *r, const char *page, char *out,
		      size_t len)
{
	const char *of = r->backing == ANON ? "page" : "file page";
	uint64_t idx = 0;
	enum page_class c = pattern_classify(page, r->seed, 0, &idx);

	if (c == PAGE_ZERO) {
		snprintf(out, len, "zeros");
		return;
	}
	if (c == PAGE_ORIGINAL || c == PAGE_OTHER) {
		snprintf(out, len, "%s %llu's data", of, (unsigned long long)idx);
		return;
	}
	c = pattern_classify(page, r->seed2, 0, &idx);
	if (c == PAGE_ORIGINAL || c == PAGE_OTHER)
		snprintf(out, len, "what the test wrote to page %llu",
			 (unsigned long long)idx);
	else
		snprintf(out, len, "other bytes");
}

static void want_name(const struct region *r, const struct want *w, char *out,
		      size_t len)
{
	if (w->zero)
		snprintf(out, len, "zeros");
	else if (w->seed == r->seed2)
		snprintf(out, len, "what the test wrote to page %llu",
			 (unsigned long long)w->index);
	else
		snprintf(out, len, "%s %llu's data",
			 r->backing == ANON ? "page" : "file page",
			 (unsigned long long)w->index);
}

static bool page_is(const char *page, const struct want *w)
{
	uint64_t other;

	if (w->zero)
		return pattern_classify(page, w->seed, w->index, &other) == PAGE_ZERO;
	return pattern_classify(page, w->seed, w->index, &other) == PAGE_ORIGINAL;
}

/*
 * Pages of the mapping that do not read what want says (holes only when
 * holes is set: reading one faults it in): how many, described in r->why.
 */
static int view_check(struct region *r, bool holes)
{
	struct bad_pages b;
	char seen[64], wanted[64];

	bad_pages_init(&b, r->why, sizeof(r->why));
	for (size_t i = 0; i < r->nr; i++) {
		const char *page = r->addr + i * pagesize;
		const struct want *w = &r->want[i];

		if ((w->hole && !holes) || page_is(page, w))
			continue;
		page_name(r, page, seen, sizeof(seen));
		want_name(r, w, wanted, sizeof(wanted));
		bad_page(&b, "virtual page %zu%s: expected %s, reads %s", i,
			 w->hole ? " (a hole)" : "", wanted, seen);
	}
	return bad_pages_done(&b);
}

/*
 * Every page the mapping shows is mapped once, by it: nothing else maps
 * the file or the anonymous pages. After a collapse, a batch that took
 * the rmap of fewer PTEs than it cleared leaves pages counted twice (the
 * PMD and a stale PTE count); one that took more, not at all. The zero
 * page (an anonymous hole read) is skipped. How many pages are off,
 * described in r->why.
 */
static int mapcount_check(struct region *r)
{
	struct pm_entry *e = calloc(r->nr, sizeof(*e));
	struct bad_pages b;

	bad_pages_init(&b, r->why, sizeof(r->why));
	if (!e || pagemap_read(r->addr, r->nr, e)) {
		bad_page(&b, "cannot read pagemap");
		goto out;
	}
	for (size_t i = 0; i < r->nr; i++) {
		uint64_t flags, count;

		if (!e[i].present || !e[i].pfn)
			continue;
		if (!kpageflags_read(e[i].pfn, &flags) ||
		    !kpagecount_read_range(e[i].pfn, 1, &count)) {
			bad_page(&b, "cannot read kpageflags/kpagecount");
			break;
		}
		if (!kpf(flags, KPF_ZERO_PAGE) && count != 1)
			bad_page(&b, "virtual page %zu: PFN %#llx mapped %llu times, expected once",
				 i, (unsigned long long)e[i].pfn,
				 (unsigned long long)count);
	}
out:
	free(e);
	return bad_pages_done(&b);
}

/* The PMD at at maps one PMD-sized folio: 0, or -1 and why. */
static int pmd_folio_check(struct region *r, char *at)
{
	struct large_folio f = {
		.addr = at, .size = pmdsize, .nr = pmdsize / pagesize,
		.cross = -1,
	};

	return folio_check(&f, r->why, sizeof(r->why));
}

/* What MADV_COLLAPSE said and did. */
struct outcome {
	int err;		/* 0 or its errno */
	long pmd_kb;		/* kB of the range's VMAs PMD-mapped after it */
	long alloc;		/* thp_collapse_alloc */
};

static const char *answer(const struct outcome *o)
{
	return o->err ? strerror(o->err) : "success";
}

/*
 * MADV_COLLAPSE of the range, with the checks every outcome must pass:
 * each page reads what it did before (holes: what a fault there would
 * have read) and is mapped once; a success means every PMD of the range
 * maps one PMD-sized folio; the RSS counters moved by what pagemap shows
 * got mapped (the batch subtracts the PTEs it clears, the PMD adds the
 * folio). khugepaged is off: its pages_collapsed stays, and so does
 * thp_collapse_alloc_failed.
 */
static void collapse_checked(struct __test_metadata *_metadata,
			     struct region *r, const char *what,
			     struct outcome *o)
{
	struct counters c;
	long before, after, rss;

	ASSERT_EQ(0, view_check(r, false))
		TH_LOG("%s, before MADV_COLLAPSE: %s", what, r->why);
	before = pages_present(r->addr, r->nr);
	counters_begin(&c, pmdsize, "status:RssAnon", "status:RssShmem",
		       "status:RssFile", "vm:thp_collapse_alloc",
		       "vm:thp_collapse_alloc_failed",
		       "khugepaged:pages_collapsed", NULL);
	o->err = madvise(r->caddr, r->clen, MADV_COLLAPSE) ? errno : 0;
	rss = counters_delta(&c, "status:RssAnon") +
	      counters_delta(&c, "status:RssShmem") +
	      counters_delta(&c, "status:RssFile");
	after = pages_present(r->addr, r->nr);
	o->alloc = counters_delta(&c, "vm:thp_collapse_alloc");
	o->pmd_kb = pmd_mapped_kb(r->caddr, r->clen);
	TH_LOG("%s: MADV_COLLAPSE: %s; %ld of %zu kB PMD-mapped; thp_collapse_alloc %+ld",
	       what, answer(o), o->pmd_kb, r->clen / 1024, o->alloc);
	if (rss_exact())
		EXPECT_EQ((after - before) * (long)(pagesize / 1024), rss)
			TH_LOG("%s: RssAnon + RssShmem + RssFile moved by %ld kB, but pagemap shows %+ld pages mapped",
			       what, rss, after - before);
	EXPECT_EQ(0, counters_delta(&c, "khugepaged:pages_collapsed"))
		TH_LOG("%s: khugepaged is stopped, yet its pages_collapsed moved",
		       what);
	EXPECT_EQ(0, counters_delta(&c, "vm:thp_collapse_alloc_failed"));
	EXPECT_EQ(0, view_check(r, true))
		TH_LOG("%s, after MADV_COLLAPSE (%s, %ld kB PMD-mapped): %s",
		       what, answer(o), o->pmd_kb, r->why);
	EXPECT_EQ(0, mapcount_check(r))
		TH_LOG("%s, after MADV_COLLAPSE (%s): %s", what, answer(o),
		       r->why);
	if (o->err)
		return;
	EXPECT_EQ((long)(r->clen / 1024), o->pmd_kb)
		TH_LOG("%s: MADV_COLLAPSE succeeded, but only %ld of %zu kB are PMD-mapped",
		       what, o->pmd_kb, r->clen / 1024);
	for (size_t pmd = 0; pmd < r->clen / pmdsize; pmd++) {
		EXPECT_EQ(0, pmd_folio_check(r, r->caddr + pmd * pmdsize))
			TH_LOG("%s, PMD %zu of the range after MADV_COLLAPSE: %s",
			       what, pmd, r->why);
	}
}

#define MAP_OK(r, expr)							\
	do {								\
		int __ret = (expr);					\
									\
		if (__ret == -EAGAIN)					\
			SKIP(return, "%s", (r)->why);			\
		ASSERT_EQ(0, __ret) TH_LOG("mapping: %s (%s)",		\
					   strerror(-__ret), (r)->why);	\
		ASSERT_EQ(0, pmd_mapped_kb((r)->addr, (r)->nr * pagesize)) \
			TH_LOG("the range is PMD-mapped before the test"); \
	} while (0)

/* ---- bodies shared by the anonymous and shmem fixtures ------------------------ */

/*
 * Case 1: a range of PTE-mapped folios must collapse: MADV_COLLAPSE
 * succeeds, one PMD maps one PMD-sized folio (kpageflags), every page
 * reads what it read and is mapped once. A PMD-sized shmem folio is
 * collapsed in place: the same PFNs, no allocation (thp_collapse_alloc
 * +0); anything copied allocates exactly one folio.
 */
static void body_collapse(struct __test_metadata *_metadata, struct region *r)
{
	bool in_place = r->backing != ANON && r->size == pmdsize;
	struct pm_entry before, after;
	struct outcome o;

	ASSERT_EQ(0, pagemap_read(r->caddr, 1, &before));
	collapse_checked(_metadata, r, "PTE-mapped range", &o);
	ASSERT_EQ(0, o.err)
		TH_LOG("MADV_COLLAPSE of a PTE-mapped range of %zu kB folios: %s",
		       r->size / 1024, strerror(o.err));
	ASSERT_EQ(0, pagemap_read(r->caddr, 1, &after));
	if (in_place) {
		EXPECT_EQ(before.pfn, after.pfn)
			TH_LOG("in-place collapse moved the folio: PFN %#llx, was %#llx",
			       (unsigned long long)after.pfn,
			       (unsigned long long)before.pfn);
		EXPECT_EQ(0, o.alloc)
			TH_LOG("in-place collapse allocated %ld folios", o.alloc);
	} else {
		EXPECT_EQ(1, o.alloc)
			TH_LOG("one PMD copied: thp_collapse_alloc %+ld", o.alloc);
	}
}

/* Moves the PTE of the page at from to to (unmapped by then): 0 or -errno. */
typedef int (*page_mover)(int uffd, char *from, char *to);

static int mremap_page(int uffd, char *from, char *to)
{
	(void)uffd;
	if (mremap(from, pagesize, pagesize, MREMAP_MAYMOVE | MREMAP_FIXED,
		   to) == MAP_FAILED)
		return -errno;
	return 0;
}

/*
 * UFFDIO_MOVE of one page: a page of a large folio makes the kernel split
 * the folio first, which fails while something else holds a reference
 * (a per-CPU LRU batch): drain and try again.
 */
static int uffd_move_page(int uffd, char *from, char *to)
{
	int ret = -EBUSY;

	for (int tries = 0; tries < 20 && (ret == -EBUSY || ret == -EAGAIN);
	     tries++) {
		if (tries) {
			lru_drain();
			usleep(1000);
		}
		ret = uffd_move(uffd, to, from, pagesize);
	}
	return ret;
}

/*
 * Rotate the pages at p[0..n): p[0]'s PTE to p[1], ..., p[n - 1]'s to
 * p[0], through the unmapped page tmp; want follows.
 */
static int rotate(struct region *r, const size_t *p, size_t n, char *tmp,
		  page_mover move, int uffd)
{
	struct want last = r->want[p[n - 1]];
	int ret;

	ret = move(uffd, r->addr + p[n - 1] * pagesize, tmp);
	for (size_t k = n - 1; !ret && k > 0; k--) {
		ret = move(uffd, r->addr + p[k - 1] * pagesize,
			   r->addr + p[k] * pagesize);
		r->want[p[k]] = r->want[p[k - 1]];
	}
	if (!ret)
		ret = move(uffd, tmp, r->addr + p[0] * pagesize);
	r->want[p[0]] = last;
	return ret;
}

/*
 * Case 2: PTEs that map pages of the right folio, at the wrong place,
 * rotated with mremap (two pages: a swap): after MADV_COLLAPSE each
 * virtual page reads what it read. mremap splits the VMA at each page it
 * moves (file offsets and anon indices no longer line up), so the kernel
 * should refuse. Guards against a collapse that ignores the VMA split or
 * the PTE order (checking only a batch's first PTE against the folio):
 * the PMD would put folio page i back under virtual page i.
 */
static void body_permuted(struct __test_metadata *_metadata, struct region *r,
			  const size_t *p, size_t n, const char *what)
{
	struct outcome o;
	struct smaps_sum s;
	int ret = rotate(r, p, n, scratch(r), mremap_page, -1);

	unreserve(scratch(r), pagesize);
	ASSERT_EQ(0, ret) TH_LOG("mremap: %s", strerror(-ret));
	ASSERT_EQ(0, smaps_range(r->caddr, r->clen, &s));
	TH_LOG("%s: the range is %d VMAs", what, s.vmas);
	collapse_checked(_metadata, r, what, &o);
	TH_LOG("%s: the kernel %s", what, o.pmd_kb ? "collapsed" :
	       "did not collapse");
}

/* The pages permuted: two swapped; five rotated, the last page among them. */
static void permutations(size_t swap[2], size_t rot[5])
{
	size_t nr = pmdsize / pagesize;

	swap[0] = 1;
	swap[1] = nr / 2 + 2;
	rot[0] = 2;
	rot[1] = nr / 4 + 1;
	rot[2] = nr / 2;
	rot[3] = nr - 3;
	rot[4] = nr - 1;
}

static void body_swap(struct __test_metadata *_metadata, struct region *r)
{
	size_t swap[2], rot[5];

	permutations(swap, rot);
	body_permuted(_metadata, r, swap, 2, "two pages swapped");
}

static void body_rotation(struct __test_metadata *_metadata, struct region *r)
{
	size_t swap[2], rot[5];

	permutations(swap, rot);
	body_permuted(_metadata, r, rot, 5, "five pages rotated");
}

/* Zap pages with MADV_DONTNEED: holes; anonymous ones then read zeros. */
static int zap(struct region *r, size_t first, size_t n)
{
	if (madvise(r->addr + first * pagesize, n * pagesize, MADV_DONTNEED))
		return -errno;
	for (size_t i = first; i < first + n; i++) {
		r->want[i].hole = true;
		r->want[i].zero = r->backing == ANON;
	}
	return 0;
}

/*
 * Case 3, holes: PTEs zapped here and there, first and last included.
 * Guards against a batch that runs over a none PTE or does not resume
 * after it (rmap, RSS and mapcount then disagree with what is mapped),
 * and against a copy that fills an anonymous hole with anything but
 * zeros. Shared file holes read the file's data.
 */
static void body_holes(struct __test_metadata *_metadata, struct region *r)
{
	size_t holes[] = { 0, 1, r->nr / 2 - 1, r->nr / 2 + 3, r->nr - 1 };
	struct outcome o;

	for (size_t k = 0; k < sizeof(holes) / sizeof(holes[0]); k++)
		ASSERT_EQ(0, zap(r, holes[k], 1));
	collapse_checked(_metadata, r, "holes", &o);
}

/*
 * Case 3, a partially mapped folio: the second half of the range zapped,
 * the first still mapped by PTEs. Guards against a batch length taken
 * from the folio rather than from the PTEs present (the counts would
 * include the unmapped half).
 */
static void body_partial(struct __test_metadata *_metadata, struct region *r)
{
	struct outcome o;

	ASSERT_EQ(0, zap(r, r->nr / 2 + 1, r->nr / 2 - 1));
	collapse_checked(_metadata, r, "second half zapped", &o);
}

/*
 * The mapping ends inside the PMD: its last pages are replaced by another
 * (anonymous, no MADV_HUGEPAGE, so it merges with nothing) VMA holding
 * other data. MADV_COLLAPSE of the PMD must leave that VMA's pages alone:
 * a collapse that ran past the VMA's end would map the folio over them.
 */
static void body_vma_short(struct __test_metadata *_metadata, struct region *r)
{
	size_t n = 8, first = r->nr - n;
	char *next = r->addr + first * pagesize;
	struct outcome o;

	ASSERT_NE(MAP_FAILED, mmap(next, n * pagesize, PROT_READ | PROT_WRITE,
				   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED,
				   -1, 0));
	for (size_t i = first; i < r->nr; i++) {
		pattern_fill(r->addr + i * pagesize, r->seed2, i);
		r->want[i] = (struct want){ .seed = r->seed2, .index = i };
	}
	collapse_checked(_metadata, r, "VMA ending 8 pages before the PMD", &o);
}

/*
 * Put this mm on khugepaged's list: a PMD-sized THP fault in an
 * MADV_HUGEPAGE VMA does so on every kernel. MADV_HUGEPAGE of the range
 * alone did not on 6.12 (its VMA had VM_HUGEPAGE already; seen in a VM
 * run, where khugepaged then waited with an empty list).
 */
static int khugepaged_register(void)
{
	char *p = mmap_aligned(pmdsize, pmdsize, PROT_READ | PROT_WRITE);
	int ret = 0;

	if (p == MAP_FAILED)
		return -ENOMEM;
	if (madvise(p, pmdsize, MADV_HUGEPAGE))
		ret = -errno;
	else
		p[0] = 1;
	munmap(p, pmdsize);
	return ret;
}

/*
 * khugepaged on, and quick: it runs while the anonymous PMD size is
 * enabled, collapses shmem where shmem_enabled allows the PMD size (a
 * huge=always tmpfs allows it anyway), and scans VMAs with VM_HUGEPAGE in
 * "madvise" mode, of the mms on its list. The settings library restores
 * every value.
 */
static int khugepaged_fast(struct region *r)
{
	char rel[64], now[64];
	int ret = 0;

	snprintf(rel, sizeof(rel), "hugepages-%zukB/enabled", pmdsize / 1024);
	if (!setting_get(rel, now, sizeof(now)))
		ret = setting_set(rel, "madvise");
	if (!ret && r->backing == MEMFD)
		ret = shmem_mthp_only(pmdsize);
	/* last: this write starts the thread (see anon_thp_off()) */
	if (!ret)
		ret = setting_set("enabled", "madvise");
	if (!ret)
		ret = setting_set("khugepaged/pages_to_scan", "32768");
	if (!ret)
		ret = setting_set("khugepaged/scan_sleep_millisecs", "10");
	if (!ret && madvise(r->caddr, r->clen, MADV_HUGEPAGE))
		ret = -errno;
	return ret ? ret : khugepaged_register();
}

/*
 * Has khugepaged collapsed the range? Anonymous: it is PMD-mapped. File:
 * khugepaged does not map the PMD itself, it takes the page table away
 * (nothing is mapped), and the next fault maps the PMD.
 */
static bool khugepaged_done(struct region *r)
{
	if (pmd_mapped_kb(r->caddr, r->clen) == (long)(r->clen / 1024))
		return true;
	return r->backing != ANON &&
	       pages_present(r->caddr, r->clen / pagesize) == 0;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/*
 * Case 4: khugepaged, not MADV_COLLAPSE, collapses the PTE-mapped range
 * within KHUGEPAGED_WAIT_S: then every page reads what it read, one PMD
 * maps one PMD-sized folio (a PMD-sized file folio the same one, in
 * place), each page is mapped once, and khugepaged's pages_collapsed
 * (and, where the folio is new, thp_collapse_alloc) counted it. For a
 * file, khugepaged's collapse_pte_mapped_thp() only clears the PTEs and
 * frees the page table (no PMD): guards against that path losing data or
 * rmap, and against khugepaged no longer collapsing PTE-mapped large
 * folios at all.
 */
static void body_khugepaged(struct __test_metadata *_metadata, struct region *r)
{
	bool copy = r->backing == ANON || r->size < pmdsize;
	struct pm_entry before, after;
	struct counters c;
	double start, waited;
	bool done;

	ASSERT_EQ(0, view_check(r, false)) TH_LOG("before: %s", r->why);
	ASSERT_EQ(0, pagemap_read(r->caddr, 1, &before));
	counters_begin(&c, pmdsize, "khugepaged:pages_collapsed",
		       "khugepaged:full_scans", "vm:thp_collapse_alloc", NULL);
	ASSERT_EQ(0, khugepaged_fast(r));
	start = now_s();
	while (!(done = khugepaged_done(r)) &&
	       now_s() - start < KHUGEPAGED_WAIT_S)
		usleep(20 * 1000);
	waited = now_s() - start;
	TH_LOG("khugepaged %s after %.1f s: full_scans %+ld, pages_collapsed %+ld, thp_collapse_alloc %+ld",
	       done ? "collapsed the range" : "had not collapsed the range",
	       waited, counters_delta(&c, "khugepaged:full_scans"),
	       counters_delta(&c, "khugepaged:pages_collapsed"),
	       counters_delta(&c, "vm:thp_collapse_alloc"));
	ASSERT_TRUE(done);
	/* a file's page table goes before khugepaged counts the collapse */
	while (counters_delta(&c, "khugepaged:pages_collapsed") < 1 &&
	       now_s() - start < waited + 5)
		usleep(20 * 1000);
	EXPECT_EQ(0, view_check(r, true))
		TH_LOG("after khugepaged's collapse: %s", r->why);
	EXPECT_EQ((long)(r->clen / 1024), pmd_mapped_kb(r->caddr, r->clen))
		TH_LOG("PMD-mapped kB after khugepaged's collapse and a read of every page");
	EXPECT_EQ(0, pmd_folio_check(r, r->caddr)) TH_LOG("%s", r->why);
	EXPECT_EQ(0, mapcount_check(r)) TH_LOG("%s", r->why);
	EXPECT_LE(1, counters_delta(&c, "khugepaged:pages_collapsed"))
		TH_LOG("khugepaged collapsed the range without counting it");
	ASSERT_EQ(0, pagemap_read(r->caddr, 1, &after));
	if (copy) {
		EXPECT_LE(1, counters_delta(&c, "vm:thp_collapse_alloc"))
			TH_LOG("a new PMD-sized folio without thp_collapse_alloc");
	} else {
		EXPECT_EQ(before.pfn, after.pfn)
			TH_LOG("khugepaged copied a PMD-sized file folio: PFN %#llx, was %#llx",
			       (unsigned long long)after.pfn,
			       (unsigned long long)before.pfn);
	}
}

/* The range, mapped the fixture's way: anonymous, or the file MAP_SHARED. */
static int map_range(struct region *r)
{
	return r->backing == ANON ? anon_map(r, 1, 0, false) :
	       file_map(r, 1, 0, MAP_SHARED);
}

/*
 * The same, half a folio off: anonymous folios faulted aligned, then three
 * PMDs of them moved by half a folio, the two PMDs inside collapsed; the
 * file mapped from half a folio in.
 */
static int map_straddled(struct region *r)
{
	return r->backing == ANON ? anon_map(r, 2, r->size / 2, false) :
	       file_map(r, 1, r->size / 2, MAP_SHARED);
}

/*
 * Case 3, folios straddling the PMD boundaries of the range: each PMD
 * starts and ends inside a folio. Anonymous memory is copied: each PMD
 * takes the parts of the folios at its ends, the parts outside stay
 * PTE-mapped and must read as before. A file cannot be PMD-mapped there
 * (virtual and file offsets disagree modulo the PMD): guards against a
 * collapse that maps the folio containing the range's first file offset
 * anyway, which would show the wrong offsets.
 */
static void body_straddle(struct __test_metadata *_metadata, struct region *r)
{
	struct outcome o;

	collapse_checked(_metadata, r, "folios across the range's PMD boundaries",
			 &o);
}

#define RANGE_TEST(fixture, name, map, body, timeout)			\
	TEST_F_TIMEOUT(fixture, name, timeout)				\
	{								\
		MAP_OK(&self->r, map(&self->r));			\
		body(_metadata, &self->r);				\
	}

/*
 * The teardown of both fixtures, and the tests both run; what each test
 * guards is said at its body. khugepaged gets 90 s: it waits up to
 * KHUGEPAGED_WAIT_S.
 */
#define REGION_TEARDOWN_AND_TESTS(fixture)				\
	FIXTURE_TEARDOWN(fixture)					\
	{								\
		region_fini(&self->r);					\
		FOLIO_TEARDOWN();					\
	}								\
	RANGE_TEST(fixture, collapse, map_range, body_collapse, 30)	\
	RANGE_TEST(fixture, permuted_swap, map_range, body_swap, 30)	\
	RANGE_TEST(fixture, permuted_rotation, map_range, body_rotation, 30) \
	RANGE_TEST(fixture, holes, map_range, body_holes, 30)		\
	RANGE_TEST(fixture, partial, map_range, body_partial, 30)	\
	RANGE_TEST(fixture, vma_short, map_range, body_vma_short, 30)	\
	RANGE_TEST(fixture, straddle, map_straddled, body_straddle, 30) \
	RANGE_TEST(fixture, khugepaged, map_range, body_khugepaged, 90)

/* ---- anonymous memory ---------------------------------------------------------- */

FIXTURE(anon)
{
	struct kmsg_watch kmsg;
	struct region r;
};

FIXTURE_VARIANT(anon)
{
	size_t size_kb;
};

FIXTURE_VARIANT_ADD(anon, 16kB) { .size_kb = 16 };
FIXTURE_VARIANT_ADD(anon, 64kB) { .size_kb = 64 };
FIXTURE_VARIANT_ADD(anon, 2048kB) { .size_kb = 2048 };

FIXTURE_SETUP(anon)
{
	ASSERT_EQ(0, region_init(&self->r, ANON, variant->size_kb * 1024));
	FOLIO_SETUP(self->r.size);
}

REGION_TEARDOWN_AND_TESTS(anon)

/*
 * Case 2 inside one VMA: two pages swapped, then five rotated, with
 * UFFDIO_MOVE, which moves PTEs (splitting the large folios they map)
 * without touching the VMA, through a spare page at its end. The range
 * stays one VMA and may be collapsed: the copy must take each page from
 * its own PTE, not from folio order or the page's old place.
 */
TEST_F(anon, permuted_uffd_move)
{
	struct region *r = &self->r;
	size_t swap[2], rot[5];
	char *tail;
	struct smaps_sum s;
	struct outcome o;
	int uffd, ret;

	permutations(swap, rot);
	MAP_OK(r, anon_map(r, 1, 0, true));
	tail = r->addr + r->nr * pagesize;
	uffd = uffd_move_open(r->addr, r->clen + pagesize, r->why,
			      sizeof(r->why));
	if (uffd < 0)
		SKIP(return, "no UFFDIO_MOVE: %s", r->why);
	ret = rotate(r, swap, 2, tail, uffd_move_page, uffd);
	if (!ret)
		ret = rotate(r, rot, 5, tail, uffd_move_page, uffd);
	close(uffd);
	ASSERT_EQ(0, ret) TH_LOG("UFFDIO_MOVE: %s", strerror(-ret));
	ASSERT_EQ(0, smaps_range(r->caddr, r->clen, &s));
	EXPECT_EQ(1, s.vmas) TH_LOG("UFFDIO_MOVE split the VMA");
	collapse_checked(_metadata, r, "pages moved by UFFDIO_MOVE", &o);
	TH_LOG("UFFDIO_MOVE: the kernel %s", o.pmd_kb ? "collapsed" :
	       "did not collapse");
}

/*
 * Case 3, a PTE mapping a page of another folio: one page zapped and
 * written again (a new small folio) among the folios of the size. The copy
 * must take each page from its own PTE.
 */
TEST_F(anon, other_folio)
{
	struct region *r = &self->r;
	size_t k = (r->size < pmdsize ? r->size : pmdsize / 2) / pagesize + 1;
	struct outcome o;

	MAP_OK(r, anon_map(r, 1, 0, false));
	ASSERT_EQ(0, madvise(r->addr + k * pagesize, pagesize, MADV_DONTNEED));
	pattern_fill(r->addr + k * pagesize, r->seed2, k);
	r->want[k] = (struct want){ .seed = r->seed2, .index = k };
	collapse_checked(_metadata, r, "one page of another folio", &o);
}

/* ---- shmem: memfd and a huge=always tmpfs -------------------------------------- */

FIXTURE(shmem)
{
	struct kmsg_watch kmsg;
	struct region r;
};

FIXTURE_VARIANT(shmem)
{
	enum backing backing;
	size_t size_kb;
};

FIXTURE_VARIANT_ADD(shmem, memfd_16kB) { .backing = MEMFD, .size_kb = 16 };
FIXTURE_VARIANT_ADD(shmem, memfd_64kB) { .backing = MEMFD, .size_kb = 64 };
FIXTURE_VARIANT_ADD(shmem, memfd_2048kB) { .backing = MEMFD, .size_kb = 2048 };
FIXTURE_VARIANT_ADD(shmem, tmpfs_2048kB) { .backing = TMPFS, .size_kb = 2048 };

FIXTURE_SETUP(shmem)
{
	struct region *r = &self->r;
	size_t size = variant->size_kb * 1024;
	int ret;

	ASSERT_EQ(0, region_init(r, variant->backing, size));
	FOLIO_SETUP_COMMON();
	if (r->backing == TMPFS) {
		char path[64];

		if (!tmpfs_mounted)
			SKIP(return, "%s", tmpfs_why);
		snprintf(path, sizeof(path), "%s/collapse-%d", TMPFS_DIR,
			 getpid());
		r->fd = open(path, O_CREAT | O_EXCL | O_RDWR | O_CLOEXEC, 0600);
		ASSERT_LE(0, r->fd) TH_LOG("%s: %s", path, strerror(errno));
		unlink(path);
	} else {
		if (!shmem_size_offered(size))
			SKIP(return, "kernel offers no %zu kB shmem folios",
			     size / 1024);
		ASSERT_EQ(0, shmem_mthp_only(size));
		r->fd = memfd_create("collapse", MFD_CLOEXEC);
		ASSERT_LE(0, r->fd) TH_LOG("memfd_create: %s", strerror(errno));
	}
	/* khugepaged would collapse the small folios as they are made */
	ASSERT_EQ(0, anon_thp_off());
	ret = file_fill(r, 2);
	if (ret == -EAGAIN)
		SKIP(return, "the file: %s", r->why);
	ASSERT_EQ(0, ret) TH_LOG("filling the file: %s (%s)", strerror(-ret),
				 r->why);
	/* from here on only the test collapses */
	ASSERT_EQ(0, khugepaged_off());
}

REGION_TEARDOWN_AND_TESTS(shmem)

/*
 * PTEs that differ: every third page, and a run of seven in the middle,
 * written through the mapping (a read fault maps a shmem page read-only
 * and clean; the write makes its PTE writable and dirty). A batch stops at
 * each change of those bits, so the PTEs go in batches of one to seven.
 * Guards against a batch that does not resume at the right PTE or does
 * not count every one (RSS, mapcount), and against a kernel that will not
 * collapse such a range: it must.
 */
TEST_F(shmem, mixed_ptes)
{
	struct region *r = &self->r;
	size_t mid = pmdsize / pagesize / 2;
	struct outcome o;

	MAP_OK(r, file_map(r, 1, 0, MAP_SHARED));
	for (size_t i = 0; i < r->nr; i++) {
		if (i % 3 && (i < mid || i >= mid + 7))
			continue;
		pattern_fill(r->addr + i * pagesize, r->seed2, i);
		r->want[i] = (struct want){ .seed = r->seed2, .index = i };
	}
	collapse_checked(_metadata, r, "every third PTE written", &o);
	EXPECT_EQ(0, o.err) TH_LOG("MADV_COLLAPSE: %s", strerror(o.err));
}

/*
 * Case 3, COW'd anonymous pages inside a MAP_PRIVATE mapping of the file:
 * the first, a middle and the last page written (each now an anonymous
 * copy, not a page of the folio). collapse_pte_mapped_thp() must see that
 * those PTEs do not map the folio's pages: a PMD over the folio would
 * replace the process's writes by the file's data. The file itself never
 * sees the writes.
 */
TEST_F(shmem, private_cow)
{
	struct region *r = &self->r;
	size_t nr = pmdsize / pagesize, cow[] = { 0, nr / 2, nr - 1 };
	struct outcome o;
	char *buf;

	MAP_OK(r, file_map(r, 1, 0, MAP_PRIVATE));
	for (size_t k = 0; k < 3; k++) {
		pattern_fill(r->addr + cow[k] * pagesize, r->seed2, cow[k]);
		r->want[cow[k]] = (struct want){ .seed = r->seed2,
						 .index = cow[k] };
	}
	collapse_checked(_metadata, r, "MAP_PRIVATE with 3 COW'd pages", &o);
	buf = malloc(pmdsize);
	ASSERT_NE(NULL, buf);
	ASSERT_EQ((ssize_t)pmdsize, pread(r->fd, buf, pmdsize, 0));
	EXPECT_EQ(0, verify_all(buf, pmdsize / pagesize, r->seed, 0,
				PAGE_ORIGINAL, r->why, sizeof(r->why)))
		TH_LOG("the file after MADV_COLLAPSE of a private mapping: %s",
		       r->why);
	free(buf);
}

FOLIO_TEST_MAIN_WITH(tmpfs_prepare)
