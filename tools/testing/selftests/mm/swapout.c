// SPDX-License-Identifier: GPL-2.0
/*
 * Swap-out of anonymous large folios through reclaim's batched unmap
 * (seed 002, "Optimize anonymous large folio unmapping"): try_to_unmap_one()
 * clears all PTEs of a PTE-mapped anonymous folio and sets its swap PTEs in
 * one go, duplicating the swap entries (folio_dup_swap) and sharing the
 * anon-exclusive pages (folio_try_share_anon_rmap_ptes) for the whole batch,
 * and restores the PTEs with set_ptes() when that fails. Every swap PTE must
 * get its own page's swap entry and keep its own soft-dirty and uffd-wp
 * bits; a batch must end at the VMA and at the page table; an abandoned
 * batch must restore every PTE exactly; rss and swap counters must move by
 * the folio's pages; and what comes back from swap is what went out.
 *
 * Needs active swap (run_vmtests.sh sets up zram). The fixture
 * swapout_destructive (MADV_HWPOISON) leaves a poisoned page behind:
 * select it alone with -f swapout_destructive, leave it out with
 * -F swapout_destructive.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/fs.h>
#include <linux/userfaultfd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>		/* brings its own copy of linux/io_uring.h */
#else
#include <linux/io_uring.h>
#endif

#include "../kselftest_harness.h"
#include "folio_test.h"

#ifndef MADV_HWPOISON
#define MADV_HWPOISON 100
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

/* PAGEMAP_SCAN (Linux 6.7): the uapi headers here may predate it. */
#ifndef PAGEMAP_SCAN
struct page_region {
	__u64 start;
	__u64 end;
	__u64 categories;
};

struct pm_scan_arg {
	__u64 size;
	__u64 flags;
	__u64 start;
	__u64 end;
	__u64 walk_end;
	__u64 vec;
	__u64 vec_len;
	__u64 max_pages;
	__u64 category_inverted;
	__u64 category_mask;
	__u64 category_anyof_mask;
	__u64 return_mask;
};

#define PAGEMAP_SCAN	_IOWR('f', 16, struct pm_scan_arg)
#define PAGE_IS_WPALLOWED	(1 << 0)
#define PAGE_IS_WRITTEN		(1 << 1)
#define PAGE_IS_FILE		(1 << 2)
#define PAGE_IS_PRESENT		(1 << 3)
#define PAGE_IS_SWAPPED		(1 << 4)
#define PAGE_IS_PFNZERO		(1 << 5)
#endif

/*
 * Swap types of real swap devices lie below those of the special swap
 * entries (migration, hwpoison, device, PTE markers), which take the top
 * of the 32 types: MAX_SWAPFILES is at least 24 with every option on.
 */
#define SWAP_TYPES_REAL 24

#define LRU_ROUNDS 10

FIXTURE(swapout)
{
	struct kmsg_watch kmsg;
	struct lru_reclaim lru;
	struct large_folio f;
	size_t size, nr;
	struct pm_entry *pm, *pm2;	/* nr entries each, faulted in setup */
	pid_t child;			/* a forked child to reap in teardown */
	char why[512];
};

FIXTURE_VARIANT(swapout)
{
	size_t size_kb;
};

FOLIO_SIZE_VARIANTS(swapout);

/* Entries faulted in now: RssAnon deltas must not see them later. */
static struct pm_entry *pm_alloc(size_t nr)
{
	struct pm_entry *e = malloc(nr * sizeof(*e));

	if (e)
		memset(e, 0xff, nr * sizeof(*e));
	return e;
}

FIXTURE_SETUP(swapout)
{
	self->size = variant->size_kb * 1024;
	self->nr = self->size / pagesize;
	self->child = 0;
	FOLIO_SETUP(self->size);
	if (!swap_active())
		SKIP(return, "no active swap (/proc/swaps is empty): swapon a device, e.g. zram, first");
	self->pm = pm_alloc(self->nr);
	self->pm2 = pm_alloc(self->nr);
	ASSERT_NE(NULL, self->pm);
	ASSERT_NE(NULL, self->pm2);
	/* Before any fault: a cgroup driver charges what we fault from now. */
	lru_reclaim_init(&self->lru);
}

FIXTURE_TEARDOWN(swapout)
{
	if (self->child > 0) {
		kill(self->child, SIGKILL);
		waitpid(self->child, NULL, 0);
	}
	folio_destroy(&self->f);
	lru_reclaim_fini(&self->lru);
	free(self->pm);
	free(self->pm2);
	FOLIO_TEARDOWN();
}

/* ---- per-page checks ----------------------------------------------------- */

/* A swap PTE holding a real swap entry (not a marker or hwpoison entry). */
static bool pm_swap_real(const struct pm_entry *e)
{
	return !e->present && e->swapped && e->swap_type < SWAP_TYPES_REAL;
}

#define ST_PRESENT 1
#define ST_SWAPPED 2

static const char *st_name(unsigned int want)
{
	switch (want) {
	case ST_PRESENT: return "present";
	case ST_SWAPPED: return "swapped";
	default: return "present or swapped";
	}
}

/*
 * Pages of e[first..first + n) in none of the states of want: how many;
 * the first few described in msg ("page 3: none, expected swapped").
 */
static int states_check_from(const struct pm_entry *e, size_t first, size_t n,
			     unsigned int want, char *msg, size_t len)
{
	struct bad_pages b;

	bad_pages_init(&b, msg, len);
	for (size_t i = first; i < first + n; i++) {
		unsigned int st = e[i].present ? ST_PRESENT :
				  pm_swap_real(&e[i]) ? ST_SWAPPED : 0;

		if (!(st & want))
			bad_page(&b, "page %zu: %s (pagemap %#llx), expected %s",
				 i, pm_state(&e[i]), (unsigned long long)e[i].raw,
				 st_name(want));
	}
	return bad_pages_done(&b);
}

static int states_check(const struct pm_entry *e, size_t n, unsigned int want,
			char *msg, size_t len)
{
	return states_check_from(e, 0, n, want, msg, len);
}

/*
 * A folio swapped out whole owns nr contiguous swap slots of one device,
 * naturally aligned (the cluster allocator hands out order-aligned ranges;
 * large-folio swap-in relies on it), and page i's swap PTE holds slot
 * offset0 + i. Pages that are not so: how many, described in msg.
 */
static int swap_contiguous(const struct pm_entry *e, size_t n, char *msg,
			   size_t len)
{
	struct bad_pages b;

	bad_pages_init(&b, msg, len);
	if (!pm_swap_real(&e[0])) {
		bad_page(&b, "page 0: %s, expected swapped", pm_state(&e[0]));
		return bad_pages_done(&b);
	}
	if (e[0].swap_offset % n)
		bad_page(&b, "page 0: swap offset %#llx not aligned to the folio's %zu pages",
			 (unsigned long long)e[0].swap_offset, n);
	for (size_t i = 1; i < n; i++)
		if (!pm_swap_real(&e[i]) || e[i].swap_type != e[0].swap_type ||
		    e[i].swap_offset != e[0].swap_offset + i)
			bad_page(&b, "page %zu: swap type %u offset %#llx (%s), expected type %u offset %#llx",
				 i, e[i].swap_type,
				 (unsigned long long)e[i].swap_offset,
				 pm_state(&e[i]), e[0].swap_type,
				 (unsigned long long)(e[0].swap_offset + i));
	return bad_pages_done(&b);
}

/* ---- faults ---------------------------------------------------------------- */

/* ---- reclaim ----------------------------------------------------------------- */

struct range {
	const char *addr;
	size_t nr;
	pid_t pid;		/* also swapped in this process (0: none) */
};

static long swapped_in(pid_t pid, const char *addr, size_t n)
{
	struct pm_entry e[64];
	long count = 0;

	for (size_t done = 0; done < n; done += 64) {
		size_t chunk = n - done < 64 ? n - done : 64;

		if (pagemap_read_pid(pid, addr + done * pagesize, chunk, e))
			return -1;
		for (size_t i = 0; i < chunk; i++)
			count += pm_swap_real(&e[i]);
	}
	return count;
}

static bool range_swapped(void *arg)
{
	struct range *r = arg;

	return swapped_in(0, r->addr, r->nr) == (long)r->nr &&
	       (!r->pid || swapped_in(r->pid, r->addr, r->nr) == (long)r->nr);
}

/*
 * LRU reclaim (not MADV_PAGEOUT, which splits a folio it sees only partly
 * in one page table or VMA, and skips shared ones) with swappiness 200
 * (anon only; a cgroup v1 driver caps it at 100), until every page is
 * swapped out, here and in pid; 0 if that never happened.
 */
static int lru_until_swapped(struct lru_reclaim *lru, const char *addr,
			     size_t nr, pid_t pid)
{
	struct range r = { addr, nr, pid };

	return lru_reclaim_until(lru, 64 << 20, 200, range_swapped, &r,
				 LRU_ROUNDS);
}

static void lru_rounds(struct lru_reclaim *lru, int rounds)
{
	lru_reclaim_rounds(lru, 64 << 20, 200, rounds);
}

/* Did the folio go out whole (one swap allocation, no split)? */
static bool went_out_whole(const struct counters *c)
{
	long out = counters_delta(c, "thp:swpout");

	if (counters_has(c, "thp:zswpout"))
		out += counters_delta(c, "thp:zswpout");
	return out == 1 && counters_delta(c, "thp:swpout_fallback") == 0;
}

/* Is every active swap device a zram device (synchronous I/O)? */
static bool swap_all_zram(void)
{
	char line[512];
	bool all = true;
	int n = 0;
	FILE *f;

	f = fopen("/proc/swaps", "r");
	if (!f)
		return false;
	while (fgets(line, sizeof(line), f))
		if (n++ && strncmp(line, "/dev/zram", 9))
			all = false;
	fclose(f);
	return all && n > 1;
}

/* ---- a folio in the swap cache, still mapped ------------------------------------- */

static bool pfn_in_swapcache(uint64_t pfn)
{
	uint64_t flags;

	return pfn && kpageflags_read(pfn, &flags) && kpf(flags, KPF_SWAPCACHE);
}

static bool folio_has_swap(void *arg)
{
	return pfn_in_swapcache(*(uint64_t *)arg);
}

/*
 * mlock the folio's second half (a large folio only partly in a VM_LOCKED
 * VMA is not mlocked: it stays on the LRU; MLOCK_ONFAULT, as plain mlock
 * would touch the pages and activate the folio) and reclaim through the LRU
 * until the folio has swap space: reclaim adds it to the swap cache, the
 * unmap swaps out the first half's PTEs and stops at the VM_LOCKED VMA, and
 * the folio is kept. self->pm gets the pagemap right after. Returns the
 * round that happened in, 0 if it never did, -errno if mlock failed; the
 * second half stays locked.
 */
static int swap_space_by_mlock(FIXTURE_DATA(swapout) *self, size_t half)
{
	uint64_t pfn = self->f.pfn;
	int rounds;

	if (syscall(__NR_mlock2, self->f.addr + half * pagesize,
		    self->size - half * pagesize, MLOCK_ONFAULT))
		return -errno;
	rounds = lru_reclaim_until(&self->lru, 64 << 20, 200, folio_has_swap,
				   &pfn, LRU_ROUNDS);
	if (pagemap_read(self->f.addr, self->nr, self->pm))
		return -EIO;
	return rounds;
}

/*
 * Leave the folio mapped whole and in the swap cache (swap space held,
 * pages unchanged): swap_space_by_mlock(), then read the first half back
 * (swap-cache hits map the same pages again) and munlock. Reclaim checks
 * a folio for pins and extra references only before giving it swap space;
 * one already in the swap cache goes straight to the unmap. True when the
 * folio ended up so, with every page mapping its old PFN.
 */
static bool into_swapcache(FIXTURE_DATA(swapout) *self)
{
	size_t half = self->nr / 2;
	bool ok;

	if (self->lru.kind == LRU_NONE)
		return false;
	ok = swap_space_by_mlock(self, half) > 0;
	/* read back: must not fault anything but swap-cache hits */
	ok = ok && verify_all(self->f.addr, self->nr, self->f.seed, 0,
			      PAGE_ORIGINAL, NULL, 0) == 0;
	munlock(self->f.addr, self->size);
	if (!ok || pagemap_read(self->f.addr, self->nr, self->pm))
		return false;
	for (size_t i = 0; i < self->nr; i++)
		if (!self->pm[i].present || self->pm[i].pfn != self->f.pfn + i)
			return false;
	return pfn_in_swapcache(self->f.pfn);
}

/* ---- 1. aligned folio, MADV_PAGEOUT ------------------------------------------ */

/*
 * An aligned folio, MADV_PAGEOUT: written out whole (its size's
 * stats/swpout +1, no swpout_fallback, no split; vmstat thp_swpout only for
 * the PMD size), RssAnon down and VmSwap up by exactly its pages, every
 * page a swap PTE holding slot offset0 + i of one device. Guards against a
 * batch that sets one swap entry for all PTEs or shifts them (pagemap
 * offsets; data after swap-in), that miscounts rss or swap entries
 * (status; "Bad rss-counter state"), or that falls back to splitting.
 *
 * Then every page is read back. What the counters must show, with the
 * folio gone from the swap cache after the write (synchronous zram: it is
 * freed at once; its old head PFN shows whether it was): every page read
 * from swap exactly once (vmstat pswpin + zswpin = nr on zram, >= nr where
 * readahead may add others' pages); stats/swpin +1 and no swpin_fallback
 * exactly when the pages came back as one folio of this size (contiguous
 * PFNs, compound head and tails), else swpin +0 and at most one
 * swpin_fallback (the large allocation is tried only at the first fault,
 * while all nr PTEs are still contiguous swap entries). If the folio is
 * still in the swap cache, no read at all and the old PFNs mapped again.
 * RssAnon and VmSwap return to their values before the swap-out.
 */
TEST_F(swapout, pageout_aligned)
{
	long rss, swap, rss_out, swap_out, rss_in, swap_in;
	long out, io, swpin, fallback;
	size_t kb = self->size / 1024;
	struct counters c, in;
	bool cached = false, large, per_size;
	uint64_t flags;

	FOLIO_BUILD(self, 1);
	counters_begin(&c, self->size, "thp:swpout", "thp:zswpout",
		       "thp:swpout_fallback", "thp:split", "vm:thp_swpout",
		       "vm:thp_swpout_fallback", "vm:thp_split_page", NULL);
	rss = status_kb("RssAnon");
	swap = status_kb("VmSwap");
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	rss_out = status_kb("RssAnon");
	swap_out = status_kb("VmSwap");
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	if (self->f.pfn && kpageflags_read(self->f.pfn, &flags))
		cached = kpf(flags, KPF_SWAPCACHE) &&
			 kpf(flags, KPF_COMPOUND_HEAD);

	/* before per-size stats (6.8): vmstat's THP counters, PMD size only */
	per_size = counters_has(&c, "thp:swpout");
	out = counters_delta(&c, per_size ? "thp:swpout" : "vm:thp_swpout");
	if (counters_has(&c, "thp:zswpout"))
		out += counters_delta(&c, "thp:zswpout");
	EXPECT_EQ(1, out)
		TH_LOG("hugepages-%zukB/stats/swpout (+zswpout) grew by %ld, expected 1: the folio was not written out whole",
		       kb, out);
	EXPECT_EQ(0, counters_delta(&c, per_size ? "thp:swpout_fallback" :
				    "vm:thp_swpout_fallback"))
		TH_LOG("swap-out of the %zu kB folio fell back to small pages", kb);
	if (counters_has(&c, "thp:split")) {
		EXPECT_EQ(0, counters_delta(&c, "thp:split"))
			TH_LOG("the folio was split on its way out");
	}
	if (self->size == pmdsize) {
		/* zswap stores do not count thp_swpout: only device writes */
		if (per_size)
			EXPECT_EQ(counters_delta(&c, "thp:swpout"),
				  counters_delta(&c, "vm:thp_swpout"))
				TH_LOG("vmstat thp_swpout vs stats/swpout of the PMD size");
		EXPECT_EQ(0, counters_delta(&c, "vm:thp_swpout_fallback"));
		EXPECT_EQ(0, counters_delta(&c, "vm:thp_split_page"))
			TH_LOG("the PMD-sized folio was split");
	} else {
		EXPECT_EQ(0, counters_delta(&c, "vm:thp_swpout"))
			TH_LOG("vmstat thp_swpout moved for a %zu kB folio: it counts PMD-sized ones only",
			       kb);
	}
	if (rss_exact()) {
		EXPECT_EQ((long)kb, rss - rss_out)
			TH_LOG("RssAnon drop (kB) after swapping out %zu pages", self->nr);
		EXPECT_EQ((long)kb, swap_out - swap)
			TH_LOG("VmSwap growth (kB) after swapping out %zu pages", self->nr);
	}
	EXPECT_EQ(0, states_check(self->pm, self->nr, ST_SWAPPED, self->why,
				  sizeof(self->why)))
		TH_LOG("after MADV_PAGEOUT: %s", self->why);
	EXPECT_EQ(0, swap_contiguous(self->pm, self->nr, self->why,
				     sizeof(self->why)))
		TH_LOG("swap entries: %s", self->why);

	counters_begin(&in, self->size, "thp:swpin", "thp:swpin_fallback",
		       "vm:pswpin", "vm:zswpin", NULL);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);
	rss_in = status_kb("RssAnon");
	swap_in = status_kb("VmSwap");
	io = counters_delta(&in, "vm:pswpin");
	if (counters_has(&in, "vm:zswpin"))
		io += counters_delta(&in, "vm:zswpin");
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	EXPECT_EQ(0, states_check(self->pm2, self->nr, ST_PRESENT, self->why,
				  sizeof(self->why)))
		TH_LOG("after reading every page: %s", self->why);
	if (rss_exact()) {	/* before 6.2 tasks sync RSS every 64 events */
		EXPECT_EQ(rss, rss_in)
			TH_LOG("RssAnon (kB) after reading every page back, vs before the swap-out");
		EXPECT_EQ(swap, swap_in)
			TH_LOG("VmSwap (kB) after reading every page back, vs before the swap-out");
	}
	large = folio_check(&self->f, self->why, sizeof(self->why)) == 0;

	if (cached) {
		EXPECT_EQ(0, io)
			TH_LOG("the folio stayed in the swap cache, yet %ld pages were read from swap",
			       io);
		for (size_t i = 0; i < self->nr; i++) {
			EXPECT_EQ(self->f.pfn + i, self->pm2[i].pfn)
				TH_LOG("page %zu: a swap-cache hit must map the old page again", i);
			if (self->pm2[i].pfn != self->f.pfn + i)
				break;
		}
	} else if (swap_all_zram()) {
		EXPECT_EQ((long)self->nr, io)
			TH_LOG("pages read from swap (vmstat pswpin+zswpin): expected each of the %zu once",
			       self->nr);
	} else {
		EXPECT_LE((long)self->nr, io)
			TH_LOG("pages read from swap (vmstat pswpin+zswpin): expected at least the %zu",
			       self->nr);
	}
	if (counters_has(&in, "thp:swpin")) {
		swpin = counters_delta(&in, "thp:swpin");
		fallback = counters_delta(&in, "thp:swpin_fallback");
		if (large && !cached) {
			EXPECT_EQ(1, swpin)
				TH_LOG("the pages came back as one %zu kB folio: stats/swpin must count it", kb);
			EXPECT_EQ(0, fallback)
				TH_LOG("stats/swpin_fallback moved, yet a %zu kB folio was swapped in", kb);
		} else {
			EXPECT_EQ(0, swpin)
				TH_LOG("stats/swpin counted a %zu kB swap-in, yet the pages are not mapped by one (%s)",
				       kb, self->why);
			EXPECT_GE(1, fallback)
				TH_LOG("stats/swpin_fallback grew by %ld: only the first fault can try a large folio",
				       fallback);
		}
	}
}

/* ---- 2. PMD-crossing folio, VMA split: LRU reclaim ----------------------------- */

/*
 * A folio straddling a PMD boundary, at every page offset, swapped out
 * through the LRU: every page ends up a swap PTE or still mapped (never
 * none), it does go out within a few rounds, a folio written out whole has
 * slot offset0 + i at page i in both page tables, and reading back gives
 * the original data. Guards against a batch that runs past the end of the
 * page table (seed 003: the next table's memory taken for PTEs), that
 * writes the second table's swap entries shifted, or that gives up on a
 * crossing folio for good.
 */
TEST_F_TIMEOUT(swapout, pmd_crossing, 300)
{
	FOLIO_NEED_LRU(self);
	for (size_t k = 1; k < self->nr; k++) {
		struct counters c;
		int rounds;

		FOLIO_BUILD(self, 100 + k);
		/* old PTEs: reclaim unmaps instead of rotating the folio */
		ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
		ASSERT_EQ(0, folio_move(&self->f, k, self->why, sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		counters_begin(&c, self->size, "thp:swpout", "thp:zswpout",
			       "thp:swpout_fallback", NULL);
		rounds = lru_until_swapped(&self->lru, self->f.addr, self->nr, 0);
		ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
		ASSERT_EQ(0, states_check(self->pm, self->nr,
					  ST_PRESENT | ST_SWAPPED, self->why,
					  sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		ASSERT_LT(0, rounds)
			TH_LOG("offset %zu: %ld of %zu pages still mapped after %d reclaim rounds",
			       k, pages_present(self->f.addr, self->nr),
			       self->nr, LRU_ROUNDS);
		if (went_out_whole(&c)) {
			ASSERT_EQ(0, swap_contiguous(self->pm, self->nr,
						     self->why, sizeof(self->why)))
				TH_LOG("offset %zu: swap entries: %s", k, self->why);
		}
		ASSERT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
					PAGE_ORIGINAL, self->why,
					sizeof(self->why)))
			TH_LOG("offset %zu: after swap-in: %s", k, self->why);
		folio_destroy(&self->f);
	}
}

/*
 * A folio whose second half was made read-only (two VMAs), swapped out
 * through the LRU: every page swapped, slots in page order across the VMA
 * boundary, data intact; after swap-in the read-only half still faults on
 * write and the writable half takes writes. Guards against a batch that
 * crosses the VMA boundary (PTEs of the other VMA unmapped twice: swap
 * counts and rss go wrong) or maps a page back with the other VMA's
 * protection.
 */
TEST_F(swapout, vma_split_mprotect)
{
	size_t half = self->nr / 2;
	struct counters c;
	struct smaps_sum s;
	int rounds;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 2);
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	ASSERT_EQ(0, mprotect(self->f.addr + half * pagesize,
			      self->size - half * pagesize, PROT_READ));
	ASSERT_EQ(0, smaps_range(self->f.addr, self->size, &s));
	ASSERT_EQ(2, s.vmas) TH_LOG("mprotect of half the folio made %d VMAs", s.vmas);
	counters_begin(&c, self->size, "thp:swpout", "thp:zswpout",
		       "thp:swpout_fallback", NULL);
	rounds = lru_until_swapped(&self->lru, self->f.addr, self->nr, 0);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	EXPECT_EQ(0, states_check(self->pm, self->nr, ST_PRESENT | ST_SWAPPED,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_LT(0, rounds)
		TH_LOG("%ld of %zu pages still mapped after %d reclaim rounds",
		       pages_present(self->f.addr, self->nr), self->nr, LRU_ROUNDS);
	if (went_out_whole(&c)) {
		EXPECT_EQ(0, swap_contiguous(self->pm, self->nr, self->why,
					     sizeof(self->why)))
			TH_LOG("swap entries: %s", self->why);
	}
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, half, self->nr - half, true,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, 0, half, false, self->why,
				  sizeof(self->why)))
		TH_LOG("%s", self->why);
}

/* ---- 3. soft-dirty ------------------------------------------------------------- */

/*
 * Soft-dirty survives swap-out (needs CONFIG_MEM_SOFT_DIRTY): clear_refs,
 * write every third page, MADV_PAGEOUT: exactly the written pages' swap
 * PTEs are soft-dirty (a PMD-mapped folio has one bit, which the PMD split
 * copies to every PTE: all). Reading back keeps each page's bit, and a
 * write to a clean page still sets it. Guards against a batch that merges
 * the bits of its PTEs (FPB_IGNORE_SOFT_DIRTY) into every swap PTE, or
 * drops them.
 */
TEST_F(swapout, soft_dirty)
{
	struct bad_pages b;
	bool *written;
	char *copy;
	int fd;

	if (!soft_dirty_supported())
		SKIP(return, "pagemap shows no soft-dirty bit: kernel without CONFIG_MEM_SOFT_DIRTY");
	FOLIO_BUILD(self, 3);
	written = calloc(self->nr, sizeof(bool));
	copy = malloc(self->size);
	ASSERT_NE(NULL, written);
	ASSERT_NE(NULL, copy);
	fd = open("/proc/self/clear_refs", O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	for (size_t i = 0; i < self->nr; i++) {
		ASSERT_FALSE(self->pm[i].soft_dirty)
			TH_LOG("page %zu soft-dirty after clear_refs", i);
	}
	for (size_t i = 0; i < self->nr; i += 3) {
		self->f.addr[i * pagesize + 17] ^= 0x5a;
		written[i] = true;
	}
	memcpy(copy, self->f.addr, self->size);
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	ASSERT_EQ(0, states_check(self->pm, self->nr, ST_SWAPPED, self->why,
				  sizeof(self->why)))
		TH_LOG("after MADV_PAGEOUT: %s", self->why);
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++) {
		bool want = written[i] || self->size == pmdsize;

		if (self->pm[i].soft_dirty != want)
			bad_page(&b, "page %zu (%s): swap PTE soft-dirty %d, expected %d",
				 i, written[i] ? "written" : "clean",
				 self->pm[i].soft_dirty, want);
	}
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);

	EXPECT_EQ(0, verify_written(self->f.addr, copy, self->nr, written,
				    self->f.seed, 0, PAGE_ORIGINAL, self->why,
				    sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++)
		if (!self->pm2[i].present ||
		    self->pm2[i].soft_dirty != self->pm[i].soft_dirty)
			bad_page(&b, "page %zu: %s, soft-dirty %d after swap-in, %d on its swap PTE",
				 i, pm_state(&self->pm2[i]),
				 self->pm2[i].soft_dirty, self->pm[i].soft_dirty);
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);
	/* a clean page read back must still be write-protected for tracking */
	for (size_t i = 0; i < self->nr; i++)
		if (!self->pm2[i].soft_dirty)
			self->f.addr[i * pagesize + 17] ^= 0x5a;
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++)
		if (!self->pm2[i].soft_dirty)
			bad_page(&b, "page %zu: written after swap-in, not soft-dirty", i);
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);
	free(written);
	free(copy);
}

/* ---- 4. uffd-wp ------------------------------------------------------------------ */

/*
 * PAGEMAP_SCAN categories (PAGE_IS_WRITTEN|PRESENT|SWAPPED) of n pages
 * into cat: 0, or -errno (-ENOTTY/-EINVAL: a kernel without it).
 */
static int pagemap_scan(const char *addr, size_t n, uint64_t *cat)
{
	struct page_region *regs = calloc(n, sizeof(*regs));
	struct pm_scan_arg arg = {
		.size = sizeof(arg),
		.start = (uintptr_t)addr,
		.end = (uintptr_t)addr + n * pagesize,
		.vec = (uintptr_t)regs,
		.vec_len = n,
		.return_mask = PAGE_IS_WRITTEN | PAGE_IS_PRESENT | PAGE_IS_SWAPPED,
	};
	int fd, ret;

	if (!regs)
		return -ENOMEM;
	fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0) {
		free(regs);
		return -errno;
	}
	ret = ioctl(fd, PAGEMAP_SCAN, &arg);
	ret = ret < 0 ? -errno : ret;
	close(fd);
	memset(cat, 0, n * sizeof(*cat));
	for (int r = 0; r < ret; r++)
		for (uint64_t a = regs[r].start; a < regs[r].end; a += pagesize)
			if (a >= arg.start && a < arg.end)
				cat[(a - arg.start) / pagesize] = regs[r].categories;
	free(regs);
	return ret < 0 ? ret : 0;
}

/*
 * Every page's PAGEMAP_SCAN categories include want and none of unwanted;
 * when the kernel has no PAGEMAP_SCAN, true (pagemap alone decides).
 */
static bool scan_check(const char *addr, size_t n, uint64_t want,
		       uint64_t unwanted, bool *have_scan, char *msg,
		       size_t len)
{
	uint64_t *cat = calloc(n, sizeof(*cat));
	struct bad_pages b;
	int ret;

	bad_pages_init(&b, msg, len);
	if (!cat) {
		bad_page(&b, "out of memory");
		return false;
	}
	ret = pagemap_scan(addr, n, cat);
	*have_scan = ret == 0;
	if (ret == -ENOTTY || ret == -EINVAL) {
		free(cat);
		return true;
	}
	if (ret)
		bad_page(&b, "PAGEMAP_SCAN: %s", strerror(-ret));
	for (size_t i = 0; !ret && i < n; i++)
		if ((cat[i] & want) != want || (cat[i] & unwanted))
			bad_page(&b, "page %zu: PAGEMAP_SCAN categories %#llx, expected %#llx set and %#llx clear",
				 i, (unsigned long long)cat[i],
				 (unsigned long long)want,
				 (unsigned long long)unwanted);
	free(cat);
	return bad_pages_done(&b) == 0;
}

/* Every page in the wanted state with the uffd-wp bit set in pagemap. */
static int uffd_wp_check(const struct pm_entry *e, size_t n, unsigned int want,
			 char *msg, size_t len)
{
	struct bad_pages b;

	if (states_check(e, n, want, msg, len))
		return -1;
	bad_pages_init(&b, msg, len);
	for (size_t i = 0; i < n; i++)
		if (!e[i].uffd_wp)
			bad_page(&b, "page %zu (%s): uffd-wp bit lost (pagemap %#llx)",
				 i, pm_state(&e[i]), (unsigned long long)e[i].raw);
	return bad_pages_done(&b);
}

/*
 * uffd-wp survives swap-out: the folio write-protected through
 * userfaultfd, MADV_PAGEOUT: every swap PTE carries the uffd-wp bit
 * (pagemap PM_UFFD_WP; PAGEMAP_SCAN: not PAGE_IS_WRITTEN), so does every
 * PTE read back; then a write to each page raises exactly one uffd-wp fault
 * (served by a thread that unprotects the page) and none lands silently.
 * Guards against a batch (seed 002, patch 5: batching in uffd-wp VMAs)
 * that sets the bit only on the first swap PTE, or on none.
 */
TEST_F(swapout, uffd_wp)
{
	uint64_t seed2 = pattern_seed(41);
	struct wp_server s = { 0 };
	bool scan;
	int uffd;

	FOLIO_BUILD(self, 4);
	uffd = uffd_wp_open(self->f.addr, self->size, 0, true, self->why,
			    sizeof(self->why));
	if (uffd < 0)
		SKIP(return, "%s", self->why);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	ASSERT_EQ(0, uffd_wp_check(self->pm, self->nr, ST_PRESENT, self->why,
				   sizeof(self->why)))
		TH_LOG("before swap-out: %s", self->why);

	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	EXPECT_EQ(0, uffd_wp_check(self->pm, self->nr, ST_SWAPPED, self->why,
				   sizeof(self->why)))
		TH_LOG("after MADV_PAGEOUT: %s", self->why);
	EXPECT_EQ(0, swap_contiguous(self->pm, self->nr, self->why,
				     sizeof(self->why)))
		TH_LOG("swap entries: %s", self->why);
	EXPECT_TRUE(scan_check(self->f.addr, self->nr, PAGE_IS_SWAPPED,
			       PAGE_IS_WRITTEN | PAGE_IS_PRESENT, &scan,
			       self->why, sizeof(self->why)))
		TH_LOG("after MADV_PAGEOUT: %s", self->why);
	if (!scan)
		TH_LOG("no PAGEMAP_SCAN here: pagemap bits only");

	/* read back: uffd-armed VMAs swap in page by page */
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	EXPECT_EQ(0, uffd_wp_check(self->pm, self->nr, ST_PRESENT, self->why,
				   sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);
	EXPECT_TRUE(scan_check(self->f.addr, self->nr, PAGE_IS_PRESENT,
			       PAGE_IS_WRITTEN, &scan, self->why,
			       sizeof(self->why)))
		TH_LOG("after swap-in: %s", self->why);

	ASSERT_EQ(0, wp_server_start(&s, uffd, self->f.addr, self->nr));
	pattern_fill_range(self->f.addr, self->nr, seed2, 0);
	EXPECT_EQ(0, wp_faults_check(&s, self->why, sizeof(self->why)))
		TH_LOG("writes after swap-in: %s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, seed2, 0, PAGE_ORIGINAL,
				self->why, sizeof(self->why)))
		TH_LOG("after the writes: %s", self->why);
	EXPECT_TRUE(scan_check(self->f.addr, self->nr,
			       PAGE_IS_PRESENT | PAGE_IS_WRITTEN, 0, &scan,
			       self->why, sizeof(self->why)))
		TH_LOG("after the writes: %s", self->why);
	wp_server_stop(&s);
	close(uffd);
}

/* ---- 5. fork-shared folio -------------------------------------------------------- */

static bool wait_byte(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

static bool send_byte(int fd)
{
	char c = 1;

	return write(fd, &c, 1) == 1;
}

/*
 * The child of fork_shared: waits, checks that none of the parent's writes
 * reached it, writes every page itself, waits, checks again. Its failure
 * goes to msg (shared) and its exit status.
 */
static int fork_shared_child(const struct large_folio *f, uint64_t child_seed,
			     int go, int done, char *msg, size_t len)
{
	char why[400];

	if (!wait_byte(go))
		return 2;
	if (verify_all(f->addr, f->nr, f->seed, 0, PAGE_ORIGINAL, why,
		       sizeof(why))) {
		snprintf(msg, len, "child, after the parent wrote the first half: %s",
			 why);
		return 1;
	}
	pattern_fill_range(f->addr, f->nr, child_seed, 0);
	if (!send_byte(done))
		return 2;
	if (!wait_byte(go))
		return 2;
	if (verify_all(f->addr, f->nr, child_seed, 0, PAGE_ORIGINAL, why,
		       sizeof(why))) {
		snprintf(msg, len, "child, after the parent wrote the second half: %s",
			 why);
		return 1;
	}
	return 0;
}

/*
 * A folio shared by fork (not exclusive), swapped out through the LRU
 * (MADV_PAGEOUT skips shared folios): both processes' PTEs become swap
 * PTEs of the same entries, and both read their data back. After swap-in
 * no write crosses: the parent writes the first half straight onto its
 * swap PTEs and reads the second, the child must see neither; the child
 * rewrites everything, the parent must not see it; the parent then writes
 * the second half it had read, the child must not see that. Guards against
 * a batch that marks pages of a shared folio exclusive (the swap PTEs keep
 * the exclusive bit: the swap-in maps them writable, the write reaches the
 * other process) or mixes the two processes' entries.
 */
TEST_F(swapout, fork_shared)
{
	uint64_t parent_seed = pattern_seed(51), child_seed = pattern_seed(52);
	size_t half = self->nr / 2, msg_len = 1024;
	int go[2], done[2], status, rounds;
	struct bad_pages b;
	char *msg;

	FOLIO_NEED_LRU(self);
	msg = mmap(NULL, msg_len, PROT_READ | PROT_WRITE,
		   MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, msg);
	msg[0] = '\0';
	FOLIO_BUILD(self, 5);
	/* old PTEs (the child's are copied old): reclaim takes it at once */
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	signal(SIGPIPE, SIG_IGN);	/* a child gone early: its status tells */
	ASSERT_EQ(0, pipe(go));
	ASSERT_EQ(0, pipe(done));
	self->child = fork();
	ASSERT_LE(0, self->child);
	if (self->child == 0) {
		close(go[1]);
		close(done[0]);
		_exit(fork_shared_child(&self->f, child_seed, go[0], done[1],
					msg, msg_len));
	}
	close(go[0]);
	close(done[1]);

	rounds = lru_until_swapped(&self->lru, self->f.addr, self->nr,
				   self->child);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	ASSERT_EQ(0, pagemap_read_pid(self->child, self->f.addr, self->nr,
				      self->pm2));
	EXPECT_EQ(0, states_check(self->pm, self->nr, ST_PRESENT | ST_SWAPPED,
				  self->why, sizeof(self->why)))
		TH_LOG("parent: %s", self->why);
	EXPECT_EQ(0, states_check(self->pm2, self->nr, ST_PRESENT | ST_SWAPPED,
				  self->why, sizeof(self->why)))
		TH_LOG("child: %s", self->why);
	EXPECT_LT(0, rounds)
		TH_LOG("not every page swapped out in both processes after %d reclaim rounds (parent %ld, child %ld of %zu)",
		       LRU_ROUNDS, swapped_in(0, self->f.addr, self->nr),
		       swapped_in(self->child, self->f.addr, self->nr), self->nr);
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++)
		if (pm_swap_real(&self->pm[i]) &&
		    (self->pm[i].raw & PM_PFN_MASK) != (self->pm2[i].raw & PM_PFN_MASK))
			bad_page(&b, "page %zu: parent's swap entry %u:%#llx, child's %s %u:%#llx",
				 i, self->pm[i].swap_type,
				 (unsigned long long)self->pm[i].swap_offset,
				 pm_state(&self->pm2[i]), self->pm2[i].swap_type,
				 (unsigned long long)self->pm2[i].swap_offset);
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);

	/* parent: write the first half onto its swap PTEs, read the second */
	pattern_fill_range(self->f.addr, half, parent_seed, 0);
	EXPECT_EQ(0, verify_all(self->f.addr + half * pagesize, self->nr - half,
				self->f.seed, half, PAGE_ORIGINAL, self->why,
				sizeof(self->why)))
		TH_LOG("parent, second half after swap-in (pages from %zu): %s",
		       half, self->why);
	if (send_byte(go[1]) && wait_byte(done[0])) {
		EXPECT_EQ(0, verify_all(self->f.addr, half, parent_seed, 0,
					PAGE_ORIGINAL, self->why,
					sizeof(self->why)))
			TH_LOG("parent's written half after the child wrote: %s",
			       self->why);
		EXPECT_EQ(0, verify_all(self->f.addr + half * pagesize,
					self->nr - half, self->f.seed, half,
					PAGE_ORIGINAL, self->why,
					sizeof(self->why)))
			TH_LOG("the child's writes reached the parent (pages from %zu): %s",
			       half, self->why);
		pattern_fill_range(self->f.addr + half * pagesize,
				   self->nr - half, parent_seed, half);
		send_byte(go[1]);	/* its status tells if it is gone */
	}
	close(go[1]);
	ASSERT_EQ(self->child, waitpid(self->child, &status, 0));
	self->child = 0;
	close(done[0]);
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child status %#x: %s", status, msg);
	munmap(msg, msg_len);
}

/* ---- unmap stopped at a VM_LOCKED VMA -------------------------------------------- */

/*
 * A folio whose second half lies in an mlock()ed VMA, reclaimed through
 * the LRU: it gets swap space (whole: one allocation) but the unmap stops
 * at the VM_LOCKED VMA. The locked half stays mapped to the same pages;
 * the first half's pages are swapped out, page i holding slot offset0 + i
 * of the folio's naturally aligned range (or still mapped, if the rmap
 * walk met the locked VMA first), and read back from the swap cache as the
 * same pages with their data. Guards against a batch that runs into the
 * VM_LOCKED VMA (unmapping locked pages), an aborted walk that leaves PTEs
 * cleared without swap entries, or entries given to the wrong pages.
 */
TEST_F(swapout, mlock_half)
{
	size_t half = self->nr / 2;
	struct bad_pages b;
	int64_t base = -1;
	struct counters c;
	bool whole;
	int rounds;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 10);
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	/* a folio that got no whole swap range was split first (6.1 does) */
	counters_begin(&c, self->size, "thp:swpout_fallback",
		       "vm:thp_swpout_fallback", NULL);
	rounds = swap_space_by_mlock(self, half);
	whole = counters_delta(&c, counters_has(&c, "thp:swpout_fallback") ?
			       "thp:swpout_fallback" : "vm:thp_swpout_fallback") == 0;
	ASSERT_LE(0, rounds) TH_LOG("mlock: %s", strerror(-rounds));
	EXPECT_LT(0, rounds)
		TH_LOG("the folio got no swap space in %d reclaim rounds", LRU_ROUNDS);
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++) {
		const struct pm_entry *e = &self->pm[i];

		if (e->present) {
			if (e->pfn != self->f.pfn + i)
				bad_page(&b, "page %zu: maps PFN %#llx, was %#llx", i,
					 (unsigned long long)e->pfn,
					 (unsigned long long)(self->f.pfn + i));
		} else if (i >= half) {
			bad_page(&b, "page %zu (locked): %s (pagemap %#llx)", i,
				 pm_state(e), (unsigned long long)e->raw);
		} else if (!pm_swap_real(e)) {
			bad_page(&b, "page %zu: %s (pagemap %#llx), expected present or swapped",
				 i, pm_state(e), (unsigned long long)e->raw);
		} else {
			/* one range for the folio: offset - i is the same for all */
			if (base < 0)
				base = e->swap_offset - i;
			if ((int64_t)(e->swap_offset - i) != base ||
			    e->swap_type != self->pm[0].swap_type)
				bad_page(&b, "page %zu: swap entry %u:%#llx, expected %u:%#llx",
					 i, e->swap_type,
					 (unsigned long long)e->swap_offset,
					 self->pm[0].swap_type,
					 (unsigned long long)(base + i));
			else if (whole && base % self->nr)
				bad_page(&b, "page %zu: swap offset %#llx: folio's range %#llx not aligned to %zu pages",
					 i, (unsigned long long)e->swap_offset,
					 (unsigned long long)base, self->nr);
		}
	}
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("after reclaim: %s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("after reading back: %s", self->why);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++)
		if (!self->pm2[i].present || self->pm2[i].pfn != self->f.pfn + i)
			bad_page(&b, "page %zu: %s PFN %#llx, expected the swap-cache page %#llx",
				 i, pm_state(&self->pm2[i]),
				 (unsigned long long)self->pm2[i].pfn,
				 (unsigned long long)(self->f.pfn + i));
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("after reading back: %s", self->why);
	munlock(self->f.addr, self->size);
}

/* ---- 6. pinned (io_uring fixed buffers) --------------------------------------- */

#ifdef HAVE_LIBURING
/*
 * Pages [first, first + count) of the folio registered as an io_uring
 * fixed buffer (FOLL_PIN | FOLL_LONGTERM), MADV_PAGEOUT: the pinned pages
 * stay mapped (the others are mapped or swapped, never lost), every page
 * reads its data; then the process writes every page, and WRITE_FIXED of
 * the buffer to a file writes exactly what the process sees.
 *
 * The folio is first put in the swap cache (into_swapcache()): reclaim
 * keeps a pinned folio that has no swap space away from swap before any
 * unmap; one already in the swap cache reaches the unmap batch, which must
 * fail to share the pinned folio's pages and restore every PTE.
 */
static void pinned_case(struct __test_metadata *_metadata,
			FIXTURE_DATA(swapout) *self, size_t first, size_t count)
{
	char path[] = "/tmp/swapout_pin.XXXXXX";
	uint64_t seed2 = pattern_seed(61);
	char *buf = self->f.addr + first * pagesize;
	size_t len = count * pagesize;
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	struct iovec iov = { buf, len };
	char *file_data;
	int fd, ret;

	if (!into_swapcache(self))
		TH_LOG("could not put the folio in the swap cache first (%s): reclaim may skip the pinned folio before its unmap",
		       self->lru.kind == LRU_NONE ? self->lru.why : "see mlock_half");
	ret = io_uring_queue_init(1, &ring, 0);
	if (ret)
		SKIP(return, "io_uring_queue_init: %s", strerror(-ret));
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret) {
		io_uring_queue_exit(&ring);
		SKIP(return, "io_uring_register_buffers: %s", strerror(-ret));
	}
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	EXPECT_EQ(0, states_check_from(self->pm, first, count, ST_PRESENT,
				       self->why, sizeof(self->why)))
		TH_LOG("pinned pages [%zu, %zu) after MADV_PAGEOUT: %s",
		       first, first + count, self->why);
	EXPECT_EQ(0, states_check(self->pm, self->nr, ST_PRESENT | ST_SWAPPED,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("after the pageout attempt: %s", self->why);

	pattern_fill_range(self->f.addr, self->nr, seed2, 0);
	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	unlink(path);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, fd, buf, len, 0, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ((int)len, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	file_data = malloc(len);
	ASSERT_NE(NULL, file_data);
	ASSERT_EQ((ssize_t)len, pread(fd, file_data, len, 0));
	EXPECT_EQ(0, verify_all(file_data, count, seed2, first, PAGE_ORIGINAL,
				self->why, sizeof(self->why)))
		TH_LOG("WRITE_FIXED wrote other data than the process sees (indices from %zu): %s",
		       first, self->why);
	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	close(fd);
	free(file_data);
}
#endif

/*
 * The whole folio pinned: MADV_PAGEOUT must leave every page mapped (the
 * batch's folio_try_share_anon_rmap_ptes fails on a pinned folio and the
 * PTEs go back), and pin and mapping still share the pages. Guards against
 * a batch that restores only some PTEs, restores them with the wrong
 * pages, or swaps out a pinned page (the process and the device would
 * then see different pages).
 */
TEST_F(swapout, pinned_whole)
{
#ifndef HAVE_LIBURING
	SKIP(return, "built without liburing");
#else
	FOLIO_BUILD(self, 6);
	pinned_case(_metadata, self, 0, self->nr);
#endif
}

/*
 * One subpage (the middle one) pinned: the pin is the folio's, so the
 * same must hold for that page, and nothing may be lost from the others.
 */
TEST_F(swapout, pinned_subpage)
{
#ifndef HAVE_LIBURING
	SKIP(return, "built without liburing");
#else
	FOLIO_BUILD(self, 7);
	pinned_case(_metadata, self, self->nr / 2, 1);
#endif
}

/* ---- 7. abandoned unmap ------------------------------------------------------- */

/*
 * Abandoned unmap restores the PTEs exactly: a folio in the swap cache
 * (into_swapcache()) whose first half is read-only (its own VMA, the first
 * the rmap walk visits) and whose last page is pinned (io_uring), so that
 * the unmap of the read-only batch fails (a pinned anon-exclusive page
 * cannot be shared for swap) and is undone; LRU reclaim. Afterwards every
 * pagemap entry is what it was (same PFN, present, flags), every read-only
 * page still faults on write, the writable ones take writes, and nothing
 * was lost. Guards against a batch restored with another PTE's write bit,
 * PFN or flags, or not restored at all. (A plain reference, as vmsplice
 * takes, does not make this unmap fail: see readonly_ref_held.)
 */
TEST_F(swapout, abandoned_readonly)
{
	size_t half = self->nr / 2;
	int ring;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 8);
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	if (!into_swapcache(self))
		TH_LOG("could not put the folio in the swap cache first (see mlock_half): reclaim may skip the pinned folio before its unmap");
	/* reading it back made it young: old again, so reclaim tries it */
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	ring = pin_pages(self->f.addr + self->size - pagesize, pagesize);
	if (ring < 0)
		SKIP(return, "io_uring fixed buffer: %s", strerror(-ring));
	ASSERT_EQ(0, mprotect(self->f.addr, half * pagesize, PROT_READ));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	lru_rounds(&self->lru, 3);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	EXPECT_EQ(0, pm_unchanged(self->pm, self->pm2, self->nr, self->why,
				  sizeof(self->why)))
		TH_LOG("after the abandoned unmap: %s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, 0, half, true, self->why,
				  sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, half, self->nr - half, false,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	unpin_pages(ring);
}


/*
 * The same layout with a plain reference held (vmsplice) instead of a
 * pin. A reference does not stop the unmap of a swap-backed folio, only
 * its freeing: the folio, already in the swap cache, is unmapped (swap
 * PTEs, or its PTEs untouched if reclaim passed it by) and kept in the swap
 * cache. Reading back must map the same pages (swap-cache hits, never a
 * second copy read from swap) with their data, the read-only half still
 * read-only, the writable half writable. Guards against a swap-in that
 * maps a page with the other VMA's protection, and a batch that leaves
 * PTEs half-changed.
 */
TEST_F(swapout, readonly_ref_held)
{
	size_t half = self->nr / 2;
	struct bad_pages b;
	bool cached;
	int p[2];

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 9);
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	cached = into_swapcache(self);
	if (!cached)
		TH_LOG("could not put the folio in the swap cache first (see mlock_half): reclaim may pass it by");
	ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
	ASSERT_EQ(0, hold_ref(self->f.addr + self->size - pagesize, p));
	ASSERT_EQ(0, mprotect(self->f.addr, half * pagesize, PROT_READ));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	lru_rounds(&self->lru, 3);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	EXPECT_EQ(0, states_check(self->pm2, self->nr, ST_PRESENT | ST_SWAPPED,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++)
		if (self->pm2[i].present && self->pm2[i].raw != self->pm[i].raw)
			bad_page(&b, "page %zu: pagemap %#llx, was %#llx", i,
				 (unsigned long long)self->pm2[i].raw,
				 (unsigned long long)self->pm[i].raw);
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm2));
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; cached && i < self->nr; i++)
		if (self->pm2[i].pfn != self->f.pfn + i)
			bad_page(&b, "page %zu: %s PFN %#llx after reading back, expected the swap-cache page %#llx",
				 i, pm_state(&self->pm2[i]),
				 (unsigned long long)self->pm2[i].pfn,
				 (unsigned long long)(self->f.pfn + i));
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, 0, half, true, self->why,
				  sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(0, writes_check(self->f.addr, half, self->nr - half, false,
				  self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	drop_ref(p);
}

/* ---- 8. destructive: hwpoison ------------------------------------------------- */

FIXTURE(swapout_destructive)
{
	struct kmsg_watch kmsg;
	struct large_folio f;
	size_t size, nr;
	struct pm_entry *pm;
	char why[512];
};

FIXTURE_VARIANT(swapout_destructive)
{
	size_t size_kb;
};

FOLIO_SIZE_VARIANTS(swapout_destructive);

FIXTURE_SETUP(swapout_destructive)
{
	self->size = variant->size_kb * 1024;
	self->nr = self->size / pagesize;
	FOLIO_SETUP(self->size);
	if (!swap_active())
		SKIP(return, "no active swap (/proc/swaps is empty): swapon a device, e.g. zram, first");
	self->pm = pm_alloc(self->nr);
	ASSERT_NE(NULL, self->pm);
}

FIXTURE_TEARDOWN(swapout_destructive)
{
	folio_destroy(&self->f);
	free(self->pm);
	FOLIO_TEARDOWN();
}

/*
 * MADV_HWPOISON on one page: 0 when poisoned (the SIGBUS memory-failure
 * sends the poisoner counts as done), else errno.
 */
static sigjmp_buf poison_jmp;

static void on_poison_sigbus(int sig)
{
	siglongjmp(poison_jmp, 1);
}

static int inject_poison(char *addr)
{
	struct sigaction sa = { .sa_handler = on_poison_sigbus }, bus;
	volatile int err = 0;

	sigaction(SIGBUS, &sa, &bus);
	if (sigsetjmp(poison_jmp, 1) == 0)
		err = madvise(addr, pagesize, MADV_HWPOISON) ? errno : 0;
	sigaction(SIGBUS, &bus, NULL);
	return err;
}

/*
 * One subpage poisoned (MADV_HWPOISON: memory-failure splits the folio and
 * unmaps that page), then MADV_PAGEOUT: every other page keeps its data
 * (swapped or mapped, read without a signal), the poisoned one raises
 * SIGBUS on access, and the kernel logs no bug ("Memory failure: ..."
 * lines are not). Guards against the unmap batch's folio-level hwpoison
 * checks (seed 002, patch 1) treating a folio with one poisoned page
 * wrongly: writing it out, or losing its healthy pages.
 * Poisons a page of the machine for good: destructive.
 */
TEST_F(swapout_destructive, hwpoison_subpage)
{
	size_t k = self->nr / 2;
	struct bad_pages b;
	int err, sig;

	FOLIO_BUILD(self, 71);
	err = inject_poison(self->f.addr + k * pagesize);
	if (err == EINVAL || err == EPERM)
		SKIP(return, "MADV_HWPOISON: %s (needs CAP_SYS_ADMIN and CONFIG_MEMORY_FAILURE)",
		     strerror(err));
	ASSERT_EQ(0, err) TH_LOG("MADV_HWPOISON of page %zu: %s", k, strerror(err));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	ASSERT_FALSE(self->pm[k].present)
		TH_LOG("the poisoned page %zu is still mapped: memory-failure did not isolate it",
		       k);

	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, self->pm));
	bad_pages_init(&b, self->why, sizeof(self->why));
	for (size_t i = 0; i < self->nr; i++) {
		if (i == k)
			continue;
		if (!self->pm[i].present && !pm_swap_real(&self->pm[i]))
			bad_page(&b, "page %zu: %s (pagemap %#llx), expected present or swapped",
				 i, pm_state(&self->pm[i]),
				 (unsigned long long)self->pm[i].raw);
		else if ((sig = access_signal(self->f.addr + i * pagesize, false)))
			bad_page(&b, "page %zu (healthy): reading raised %s", i,
				 strsignal(sig));
		else if (pattern_classify(self->f.addr + i * pagesize,
					  self->f.seed, i, NULL) != PAGE_ORIGINAL)
			bad_page(&b, "page %zu (healthy): not its data after swap-in", i);
	}
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", self->why);
	sig = access_signal(self->f.addr + k * pagesize, false);
	EXPECT_EQ(SIGBUS, sig)
		TH_LOG("reading the poisoned page %zu: %s, expected SIGBUS", k,
		       sig ? strsignal(sig) : "no signal");
}

FOLIO_TEST_MAIN
