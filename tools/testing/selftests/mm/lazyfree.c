// SPDX-License-Identifier: GPL-2.0
/*
 * Reclaim of lazyfree (MADV_FREE) large folios, which reclaim unmaps in
 * batches: all PTEs of a PTE-mapped folio cleared and its rmap dropped at
 * once (try_to_unmap_one() with folio_unmap_pte_batch()). A clean folio
 * must be discarded whole without a stop on the deferred-split queue; a
 * folio written after MADV_FREE, pinned, locked or referenced must be kept
 * with its PTEs restored exactly; a batch must end at the VMA and at the
 * page table, which a folio mapped across a PMD boundary tests.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef HAVE_LIBURING
#include <liburing.h>
#endif

#include "../kselftest_harness.h"
#include "folio_test.h"

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif

FIXTURE(lazyfree)
{
	struct kmsg_watch kmsg;
	struct lru_reclaim lru;
	struct large_folio f;
	size_t size, nr;
	char why[512];
};

FIXTURE_VARIANT(lazyfree)
{
	size_t size_kb;
};

FOLIO_SIZE_VARIANTS(lazyfree);

FIXTURE_SETUP(lazyfree)
{
	self->size = variant->size_kb * 1024;
	self->nr = self->size / pagesize;
	FOLIO_SETUP(self->size);
	/* Before any fault: a cgroup driver charges what we fault from now. */
	lru_reclaim_init(&self->lru);
}

FIXTURE_TEARDOWN(lazyfree)
{
	folio_destroy(&self->f);
	lru_reclaim_fini(&self->lru);
	FOLIO_TEARDOWN();
}

/* MADV_FREE the whole folio; smaps must count all of it lazyfree. */
#define MAKE_LAZYFREE(self)						\
	do {								\
		struct smaps_sum __s;					\
		ASSERT_EQ(0, madvise((self)->f.addr, (self)->size, MADV_FREE)); \
		ASSERT_EQ(0, smaps_range((self)->f.addr, (self)->size, &__s)); \
		ASSERT_EQ((long)((self)->size / 1024), __s.lazyfree)	\
			TH_LOG("smaps LazyFree after MADV_FREE of %zu kB", \
			       (self)->size / 1024);			\
	} while (0)

/*
 * LRU reclaim (not MADV_PAGEOUT, which splits a folio it sees only partly
 * in one page table or VMA): until the range is gone, or a few rounds when
 * it is meant to stay. Lazyfree folios sit on the file LRU: swappiness 0.
 */
static int lru_until_gone(struct lru_reclaim *lru, char *addr, size_t nr)
{
	return lru_until_unmapped(lru, 64 << 20, 0, addr, nr, 30);
}

static void lru_rounds(struct lru_reclaim *lru, int rounds)
{
	lru_reclaim_rounds(lru, 64 << 20, 0, rounds);
}

/*
 * RssAnon must fall by exactly the pages that left the mapping: a batch
 * that miscounts leaves "Bad rss-counter state" behind.
 */
#define EXPECT_RSS_DROP(rss_before, present_before, addr, nr)		\
	do {								\
		long __gone = (present_before) - pages_present(addr, nr); \
		if (!rss_exact())					\
			break;	/* before 6.2: RssAnon lags */		\
		EXPECT_EQ((long)(__gone * pagesize / 1024),		\
			  (rss_before) - status_kb("RssAnon"))		\
			TH_LOG("RssAnon drop (kB) vs %ld pages unmapped", __gone); \
	} while (0)

/*
 * Clean, aligned: the folio is discarded whole. Guards against a kernel
 * that unmaps a lazyfree folio PTE by PTE and queues it for deferred split
 * on the way (split_deferred moves; seeds 000/001), that drops it without
 * counting pglazyfreed, or that leaves data behind.
 */
TEST_F(lazyfree, clean_aligned)
{
	struct counters c;
	struct smaps_sum s;
	long rss;

	FOLIO_BUILD(self, 1);
	MAKE_LAZYFREE(self);
	/* before per-size stats (6.8): the global count, for the PMD size */
	counters_begin(&c, self->size, "thp:split_deferred", "vm:pglazyfreed",
		       "thp:nr_anon", "vm:thp_deferred_split_page", NULL);
	rss = status_kb("RssAnon");
	ASSERT_EQ(0, pageout(self->f.addr, self->size));

	EXPECT_EQ(0, pages_present(self->f.addr, self->nr))
		TH_LOG("pages still mapped after MADV_PAGEOUT of a clean lazyfree folio");
	EXPECT_RSS_DROP(rss, (long)self->nr, self->f.addr, self->nr);
	EXPECT_EQ((long)self->nr, counters_delta(&c, "vm:pglazyfreed"));
	EXPECT_EQ(0, counters_delta(&c, counters_has(&c, "thp:split_deferred") ?
					"thp:split_deferred" :
					"vm:thp_deferred_split_page"))
		TH_LOG("the folio went through the deferred-split queue");
	if (counters_has(&c, "thp:nr_anon"))
		EXPECT_EQ(-1, counters_delta(&c, "thp:nr_anon"));
	ASSERT_EQ(0, smaps_range(self->f.addr, self->size, &s));
	EXPECT_EQ(0, s.lazyfree) TH_LOG("smaps LazyFree after reclaim");
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ZERO, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
}

/*
 * Write one byte to each page in [first, last] after MADV_FREE, then
 * MADV_PAGEOUT: what was written must survive, the rest reads original or
 * zero. Guards against a batch that ignores the dirty bit of one PTE
 * (FPB_IGNORE_DIRTY without a folio-level dirty check) and discards a
 * folio the process wrote to.
 */
static void redirty(struct __test_metadata *_metadata,
		    FIXTURE_DATA(lazyfree) *self, size_t first, size_t last)
{
	bool *written = calloc(self->nr, sizeof(bool));
	char *copy = malloc(self->size);
	long rss, present;

	ASSERT_NE(NULL, written);
	ASSERT_NE(NULL, copy);
	MAKE_LAZYFREE(self);
	for (size_t i = first; i <= last; i++) {
		self->f.addr[i * pagesize + pagesize / 2] ^= 0x5a;
		written[i] = true;
	}
	memcpy(copy, self->f.addr, self->size);
	present = pages_present(self->f.addr, self->nr);
	rss = status_kb("RssAnon");
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	EXPECT_RSS_DROP(rss, present, self->f.addr, self->nr);
	EXPECT_EQ(0, verify_written(self->f.addr, copy, self->nr, written,
				    self->f.seed, 0, PAGE_ORIGINAL | PAGE_ZERO,
				    self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	free(written);
	free(copy);
}

TEST_F(lazyfree, redirty_whole)
{
	FOLIO_BUILD(self, 2);
	redirty(_metadata, self, 0, self->nr - 1);
}

TEST_F(lazyfree, redirty_first)
{
	FOLIO_BUILD(self, 3);
	redirty(_metadata, self, 0, 0);
}

TEST_F(lazyfree, redirty_middle)
{
	FOLIO_BUILD(self, 4);
	redirty(_metadata, self, self->nr / 2, self->nr / 2);
}

TEST_F(lazyfree, redirty_last)
{
	FOLIO_BUILD(self, 5);
	redirty(_metadata, self, self->nr - 1, self->nr - 1);
}

/*
 * A clean lazyfree folio straddling a PMD boundary, at every page offset,
 * reclaimed through the LRU: all of it goes, and reads zero. Guards
 * against a batch that runs past the end of the page table (seed 003:
 * folio_pte_batch() reading the next table's memory as PTEs), which
 * corrupts or crashes here.
 */
TEST_F_TIMEOUT(lazyfree, pmd_crossing_clean, 300)
{
	FOLIO_NEED_LRU(self);
	for (size_t k = 1; k < self->nr; k++) {
		int rounds;
		long rss;

		FOLIO_BUILD(self, 100 + k);
		MAKE_LAZYFREE(self);
		ASSERT_EQ(0, folio_move(&self->f, k, self->why, sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		rss = status_kb("RssAnon");
		rounds = lru_until_gone(&self->lru, self->f.addr, self->nr);
		ASSERT_LT(0, rounds)
			TH_LOG("offset %zu: %ld of %zu pages still mapped after 30 reclaim rounds",
			       k, pages_present(self->f.addr, self->nr), self->nr);
		EXPECT_RSS_DROP(rss, (long)self->nr, self->f.addr, self->nr);
		ASSERT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
					PAGE_ZERO, self->why, sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		folio_destroy(&self->f);
	}
}

/*
 * The same, with the page before the boundary and the last page written
 * after MADV_FREE (PTEs old: MADV_COLD before the move, so reclaim tries
 * the unmap instead of rotating the folio): both writes survive, in
 * whichever page table their PTE sits.
 * (Both crossing tests build 511 folios at 2 MB: 300 s, for QEMU TCG.)
 */
TEST_F_TIMEOUT(lazyfree, pmd_crossing_redirty, 300)
{
	bool *written = calloc(self->nr, sizeof(bool));
	char *copy = malloc(self->size);

	ASSERT_NE(NULL, written);
	ASSERT_NE(NULL, copy);
	FOLIO_NEED_LRU(self);
	for (size_t k = 1; k < self->nr; k++) {
		long rss, present;

		FOLIO_BUILD(self, 1000 + k);
		MAKE_LAZYFREE(self);
		memset(written, 0, self->nr);
		written[k - 1] = written[self->nr - 1] = true;
		self->f.addr[(k - 1) * pagesize + 1] ^= 0x5a;
		self->f.addr[self->size - 1] ^= 0x5a;
		memcpy(copy, self->f.addr, self->size);
		ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_COLD));
		ASSERT_EQ(0, folio_move(&self->f, k, self->why, sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		present = pages_present(self->f.addr, self->nr);
		rss = status_kb("RssAnon");
		lru_rounds(&self->lru, 2);
		EXPECT_RSS_DROP(rss, present, self->f.addr, self->nr);
		ASSERT_EQ(0, verify_written(self->f.addr, copy, self->nr, written,
					    self->f.seed, 0,
					    PAGE_ORIGINAL | PAGE_ZERO, self->why,
					    sizeof(self->why)))
			TH_LOG("offset %zu: %s", k, self->why);
		folio_destroy(&self->f);
	}
	free(written);
	free(copy);
}

/*
 * A lazyfree folio whose second half was made read-only (two VMAs),
 * reclaimed through the LRU: clean, so all of it goes; the read-only half
 * stays read-only. Guards against a batch that crosses the VMA boundary
 * (unmapping PTEs under the wrong VMA: rss counters and rmap go wrong) or
 * restores PTEs with the other VMA's write bit.
 */
TEST_F(lazyfree, vma_split_mprotect)
{
	size_t half = self->nr / 2;
	struct smaps_sum s;
	long rss;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 6);
	MAKE_LAZYFREE(self);
	ASSERT_EQ(0, mprotect(self->f.addr + half * pagesize, self->size -
			      half * pagesize, PROT_READ));
	ASSERT_EQ(0, smaps_range(self->f.addr, self->size, &s));
	ASSERT_EQ(2, s.vmas);
	rss = status_kb("RssAnon");
	ASSERT_LT(0, lru_until_gone(&self->lru, self->f.addr, self->nr))
		TH_LOG("%ld of %zu pages still mapped after 30 reclaim rounds",
		       pages_present(self->f.addr, self->nr), self->nr);
	EXPECT_RSS_DROP(rss, (long)self->nr, self->f.addr, self->nr);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ZERO, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	EXPECT_EQ(SIGSEGV, access_signal(self->f.addr + half * pagesize, true))
		TH_LOG("the read-only half became writable");
	EXPECT_EQ(0, access_signal(self->f.addr, true));
}

/*
 * A lazyfree folio whose last quarter was munmapped: the rest is still a
 * large folio, now partly mapped, and reclaim must still take what is
 * mapped, and only that, with the counters right.
 */
TEST_F(lazyfree, partial_munmap)
{
	size_t keep = self->nr - self->nr / 4;
	long rss;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 7);
	MAKE_LAZYFREE(self);
	ASSERT_EQ(0, munmap(self->f.addr + keep * pagesize,
			    (self->nr - keep) * pagesize));
	rss = status_kb("RssAnon");
	ASSERT_LT(0, lru_until_gone(&self->lru, self->f.addr, keep))
		TH_LOG("%ld of %zu pages still mapped after 30 reclaim rounds",
		       pages_present(self->f.addr, keep), keep);
	EXPECT_RSS_DROP(rss, (long)keep, self->f.addr, keep);
	EXPECT_EQ(0, verify_all(self->f.addr, keep, self->f.seed, 0, PAGE_ZERO,
				self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
}

/* Run fn in a forked child; 0 when it exited 0, else its status. */
struct child {
	pid_t pid;
	int go[2], done[2];
};

static void child_start(struct child *c)
{
	pid_t parent = getpid();

	if (pipe(c->go) || pipe(c->done)) {
		c->pid = -1;
		return;
	}
	c->pid = fork();
	/*
	 * A test that fails an ASSERT leaves its child waiting on a pipe it
	 * holds both ends of, and holding the machine-wide lock: take it along.
	 */
	if (c->pid == 0 && (prctl(PR_SET_PDEATHSIG, SIGKILL) || getppid() != parent))
		_exit(2);
}

static void child_signal(int fd)
{
	char b = 1;

	if (write(fd, &b, 1) != 1)
		_exit(2);
}

static void child_wait_for(int fd)
{
	char b;

	if (read(fd, &b, 1) != 1)
		_exit(2);
}

enum who { CHILD_FREES = 1, PARENT_FREES = 2 };

/*
 * fork shares the folio; MADV_FREE in one side, both, or (by the child)
 * only; then reclaim, by MADV_PAGEOUT (which skips shared folios) and by
 * the LRU. The side that did not MADV_FREE must read its data unchanged;
 * the side that did reads original or zero. Guards against lazyfree state
 * set on a folio another process still maps (its data discarded under
 * it), and against a batch that mixes up the two processes' PTEs.
 */
static void fork_case(struct __test_metadata *_metadata,
		      FIXTURE_DATA(lazyfree) *self, int who)
{
	unsigned int parent_ok = who & PARENT_FREES ? PAGE_ORIGINAL | PAGE_ZERO :
						      PAGE_ORIGINAL;
	unsigned int child_ok = who & CHILD_FREES ? PAGE_ORIGINAL | PAGE_ZERO :
						    PAGE_ORIGINAL;
	struct child c;
	int status;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 8 + who);
	child_start(&c);
	ASSERT_LE(0, c.pid);
	if (c.pid == 0) {
		if (who & CHILD_FREES)
			madvise(self->f.addr, self->size, MADV_FREE);
		child_signal(c.done[1]);
		child_wait_for(c.go[0]);
		_exit(verify_all(self->f.addr, self->nr, self->f.seed, 0,
				 child_ok, NULL, 0) ? 1 : 0);
	}
	child_wait_for(c.done[0]);
	if (who & PARENT_FREES)
		ASSERT_EQ(0, madvise(self->f.addr, self->size, MADV_FREE));
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	lru_rounds(&self->lru, 3);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				parent_ok, self->why, sizeof(self->why)))
		TH_LOG("parent: %s", self->why);
	child_signal(c.go[1]);
	ASSERT_EQ(c.pid, waitpid(c.pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child: its view of the folio is not %s (status %#x)",
		       child_ok & PAGE_ZERO ? "original|zero" : "original",
		       status);
}

TEST_F(lazyfree, fork_child_frees)
{
	fork_case(_metadata, self, CHILD_FREES);
}

TEST_F(lazyfree, fork_parent_frees)
{
	fork_case(_metadata, self, PARENT_FREES);
}

TEST_F(lazyfree, fork_both_free)
{
	fork_case(_metadata, self, CHILD_FREES | PARENT_FREES);
}

/*
 * Pinned after MADV_FREE (io_uring fixed buffer, FOLL_LONGTERM):
 * MADV_PAGEOUT must not discard it. READ_FIXED from a file into the buffer
 * must show at the process's addresses and WRITE_FIXED must write what the
 * process sees: pin and mapping still share the pages. Guards against a
 * discard that ignores the extra reference (ref_count == 1 + map_count).
 */
TEST_F(lazyfree, pinned_io_uring)
{
#ifndef HAVE_LIBURING
	SKIP(return, "built without liburing");
#else
	char path[] = "/tmp/lazyfree_pin.XXXXXX";
	uint64_t seed2 = pattern_seed(50), seed3 = pattern_seed(51);
	struct io_uring_sqe *sqe;
	struct io_uring_cqe *cqe;
	struct io_uring ring;
	struct iovec iov;
	char *file_data;
	int fd, ret;

	FOLIO_BUILD(self, 10);
	MAKE_LAZYFREE(self);
	ret = io_uring_queue_init(1, &ring, 0);
	if (ret)
		SKIP(return, "io_uring_queue_init: %s", strerror(-ret));
	iov.iov_base = self->f.addr;
	iov.iov_len = self->size;
	ret = io_uring_register_buffers(&ring, &iov, 1);
	if (ret) {
		io_uring_queue_exit(&ring);
		SKIP(return, "io_uring_register_buffers: %s", strerror(-ret));
	}
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	EXPECT_EQ((long)self->nr, pages_present(self->f.addr, self->nr))
		TH_LOG("pages of a pinned lazyfree folio were unmapped");

	fd = mkstemp(path);
	ASSERT_LE(0, fd);
	unlink(path);
	file_data = malloc(self->size);
	ASSERT_NE(NULL, file_data);
	pattern_fill_range(file_data, self->nr, seed2, 0);
	ASSERT_EQ((ssize_t)self->size, pwrite(fd, file_data, self->size, 0));

	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_read_fixed(sqe, fd, self->f.addr, self->size, 0, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ((int)self->size, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, seed2, 0, PAGE_ORIGINAL,
				self->why, sizeof(self->why)))
		TH_LOG("READ_FIXED did not land at the process's addresses: %s",
		       self->why);

	pattern_fill_range(self->f.addr, self->nr, seed3, 0);
	sqe = io_uring_get_sqe(&ring);
	io_uring_prep_write_fixed(sqe, fd, self->f.addr, self->size, 0, 0);
	ASSERT_EQ(1, io_uring_submit(&ring));
	ASSERT_EQ(0, io_uring_wait_cqe(&ring, &cqe));
	EXPECT_EQ((int)self->size, cqe->res);
	io_uring_cqe_seen(&ring, cqe);
	ASSERT_EQ((ssize_t)self->size, pread(fd, file_data, self->size, 0));
	EXPECT_EQ(0, verify_all(file_data, self->nr, seed3, 0, PAGE_ORIGINAL,
				self->why, sizeof(self->why)))
		TH_LOG("WRITE_FIXED wrote other pages than the process's: %s",
		       self->why);

	io_uring_unregister_buffers(&ring);
	io_uring_queue_exit(&ring);
	close(fd);
	free(file_data);
#endif
}

/*
 * Abandoned unmap restores the PTEs exactly: a lazyfree folio whose
 * second half is read-only (its own VMA), a reference held so that the
 * discard fails, LRU reclaim: afterwards the read-only half still faults
 * on write, the writable half still takes writes, and nothing was lost.
 * Guards against restoring a batch with the write bit of another PTE.
 */
TEST_F(lazyfree, abandoned_readonly)
{
	size_t half = self->nr / 2;
	int p[2];

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 11);
	MAKE_LAZYFREE(self);
	ASSERT_EQ(0, mprotect(self->f.addr + half * pagesize, self->size -
			      half * pagesize, PROT_READ));
	ASSERT_EQ(0, hold_ref(self->f.addr, p));
	lru_rounds(&self->lru, 3);
	EXPECT_EQ(SIGSEGV, access_signal(self->f.addr + half * pagesize, true))
		TH_LOG("a read-only page became writable");
	EXPECT_EQ(SIGSEGV, access_signal(self->f.addr + self->size - pagesize, true))
		TH_LOG("the last read-only page became writable");
	EXPECT_EQ(0, access_signal(self->f.addr, true));
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ORIGINAL | PAGE_ZERO, self->why,
				sizeof(self->why)))
		TH_LOG("%s", self->why);
	drop_ref(p);
}

/*
 * One VMA whose folio has writable (exclusive) and write-protected
 * (COW-shared with a live child) PTEs side by side: MADV_DONTFORK of one
 * half, fork, MADV_DOFORK (the VMAs merge again). MADV_FREE, a write to an
 * exclusive page (so reclaim must keep the folio), LRU reclaim; then a
 * parent write to a shared page must not reach the child, which checks
 * its half after them.
 */
static void cow_shared_check(struct __test_metadata *_metadata,
			     FIXTURE_DATA(lazyfree) *self, bool shared_first)
{
	size_t half = self->nr / 2;
	size_t sh_first = shared_first ? 0 : half;
	size_t sh_nr = shared_first ? half : self->nr - half;
	struct smaps_sum s;
	struct child c;
	int status;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, shared_first ? 12 : 14);
	/* the half that is not to be shared stays out of the child */
	ASSERT_EQ(0, madvise(self->f.addr + (shared_first ? half * pagesize : 0),
			     (self->nr - sh_nr) * pagesize, MADV_DONTFORK));
	child_start(&c);
	ASSERT_LE(0, c.pid);
	if (c.pid == 0) {
		child_signal(c.done[1]);
		child_wait_for(c.go[0]);
		_exit(verify_all(self->f.addr + sh_first * pagesize, sh_nr, self->f.seed,
				 sh_first, PAGE_ORIGINAL, NULL, 0) ? 1 : 0);
	}
	child_wait_for(c.done[0]);
	ASSERT_EQ(0, madvise(self->f.addr + (shared_first ? half * pagesize : 0),
			     (self->nr - sh_nr) * pagesize, MADV_DOFORK));
	ASSERT_EQ(0, smaps_range(self->f.addr, self->size, &s));
	EXPECT_EQ(1, s.vmas) TH_LOG("the VMAs did not merge back");
	madvise(self->f.addr, self->size, MADV_FREE);
	/* dirty an exclusive page: reclaim must restore the PTEs */
	self->f.addr[shared_first ? self->size - 1 : 0] ^= 0x5a;
	lru_rounds(&self->lru, 3);
	/* parent writes every shared page; the child must see none of it */
	for (size_t i = sh_first; i < sh_first + sh_nr; i++)
		self->f.addr[i * pagesize + 8] ^= 0x5a;
	child_signal(c.go[1]);
	ASSERT_EQ(c.pid, waitpid(c.pid, &status, 0));
	EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("the child saw the parent's writes (or lost data): status %#x",
		       status);
}

/*
 * The shared half first: the unmap batch starts at a write-protected PTE.
 * Guards against restoring the exclusive PTEs read-only and losing data.
 */
TEST_F(lazyfree, abandoned_cow_shared)
{
	cow_shared_check(_metadata, self, true);
}

/*
 * The exclusive half first: the batch starts at a writable, dirty PTE.
 * Guards against a batch that ignores the write bit (FPB_RESPECT_WRITE
 * dropped from folio_unmap_pte_batch): the restore would make the shared
 * PTEs writable, a COW breach.
 */
TEST_F(lazyfree, abandoned_cow_shared_last)
{
	cow_shared_check(_metadata, self, false);
}

/*
 * Soft-dirty bits survive an abandoned unmap (needs CONFIG_MEM_SOFT_DIRTY):
 * clear_refs, write two subpages, hold a reference to page 1, LRU
 * reclaim: the written pages are soft-dirty, the others not. With
 * via_fork a fork (the child exits at once) write-protects every PTE
 * first, so that PTEs differ in their soft-dirty bit alone.
 */
static void soft_dirty_check(struct __test_metadata *_metadata,
			     FIXTURE_DATA(lazyfree) *self, bool via_fork)
{
	struct pm_entry *e = calloc(self->nr, sizeof(*e));
	size_t w1 = via_fork ? self->nr / 2 : 0, w2 = self->nr - 1;
	int fd, p[2];

	ASSERT_NE(NULL, e);
	if (!soft_dirty_supported())
		SKIP(return, "pagemap shows no soft-dirty bit: kernel without CONFIG_MEM_SOFT_DIRTY");
	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, via_fork ? 15 : 13);
	if (!via_fork)
		MAKE_LAZYFREE(self);
	fd = open("/proc/self/clear_refs", O_WRONLY);
	ASSERT_LE(0, fd);
	ASSERT_EQ(1, write(fd, "4", 1));
	close(fd);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, e));
	for (size_t i = 0; i < self->nr; i++) {
		ASSERT_FALSE(e[i].soft_dirty)
			TH_LOG("page %zu soft-dirty after clear_refs", i);
	}
	/* reads leave PTEs clean: only the written pages may be soft-dirty */
	self->f.addr[w1 * pagesize] ^= 0x5a;
	self->f.addr[w2 * pagesize] ^= 0x5a;
	if (via_fork) {
		pid_t pid = fork();
		int status;

		ASSERT_LE(0, pid);
		if (pid == 0)
			_exit(0);
		ASSERT_EQ(pid, waitpid(pid, &status, 0));
		MAKE_LAZYFREE(self);
	}
	ASSERT_EQ(0, hold_ref(self->f.addr + pagesize, p));	/* never written */
	lru_rounds(&self->lru, 3);
	ASSERT_EQ(0, pagemap_read(self->f.addr, self->nr, e));
	for (size_t i = 0; i < self->nr; i++) {
		bool want = i == w1 || i == w2;

		if (!e[i].present)
			continue;	/* discarded clean: no bit to keep */
		/*
		 * A PMD-mapped folio has one soft-dirty bit for all its
		 * pages: the writes set it for every page.
		 */
		if (self->size == pmdsize && !want)
			continue;
		EXPECT_EQ(want, e[i].soft_dirty)
			TH_LOG("page %zu: soft-dirty %d, expected %d", i,
			       e[i].soft_dirty, want);
	}
	drop_ref(p);
	free(e);
}

/*
 * Written pages writable and soft-dirty, the others write-protected and
 * clean. Guards against the restore dropping the merged bits or setting
 * them all.
 */
TEST_F(lazyfree, abandoned_soft_dirty)
{
	soft_dirty_check(_metadata, self, false);
}

/*
 * Every PTE write-protected by a fork, soft-dirty on the written pages
 * only, the first page clean: one write bit, two soft-dirty bits. Guards
 * against a batch that ignores the soft-dirty bit (FPB_RESPECT_SOFT_DIRTY
 * dropped from folio_unmap_pte_batch): the restore would give every PTE
 * the first one's bit, and the written pages would lose theirs.
 */
TEST_F(lazyfree, abandoned_soft_dirty_fork)
{
	soft_dirty_check(_metadata, self, true);
}

/*
 * MAP_DROPPABLE (Linux 6.11+): reclaim drops the folio even when written
 * after MADV_FREE, and the pages read zero. Guards against the dirty check
 * of the batch losing the VM_DROPPABLE exception (the folio kept forever).
 */
TEST_F(lazyfree, droppable)
{
	char *p;
	size_t len = 2 * self->size;
	char *a;

	p = mmap(NULL, len + self->size, PROT_READ | PROT_WRITE,
		 MAP_DROPPABLE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		SKIP(return, "mmap(MAP_DROPPABLE): %s", strerror(errno));
	a = (char *)(((uintptr_t)p + self->size - 1) & ~(uintptr_t)(self->size - 1));
	ASSERT_EQ(0, madvise(a, self->size, MADV_HUGEPAGE));
	pattern_fill_range(a, self->nr, pattern_seed(14), 0);
	a[0] ^= 0x5a;
	ASSERT_EQ(0, pageout(a, self->size));
	EXPECT_EQ(0, pages_present(a, self->nr))
		TH_LOG("a dirty droppable folio was kept");
	EXPECT_EQ(0, verify_all(a, self->nr, pattern_seed(14), 0, PAGE_ZERO,
				self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
	munmap(p, len + self->size);
}

/*
 * A lazyfree folio whose second half lies in an mlock2(MLOCK_ONFAULT) VMA:
 * LRU reclaim may take the first half but never the locked pages. Guards
 * against a batch that ignores VM_LOCKED of the VMA a PTE belongs to.
 */
TEST_F(lazyfree, mlock_half)
{
	size_t half = self->nr / 2;
	struct smaps_sum s;

	FOLIO_NEED_LRU(self);
	FOLIO_BUILD(self, 15);
	MAKE_LAZYFREE(self);
	if (syscall(__NR_mlock2, self->f.addr + half * pagesize,
		    self->size - half * pagesize, MLOCK_ONFAULT))
		SKIP(return, "mlock2: %s", strerror(errno));
	ASSERT_EQ(0, smaps_range(self->f.addr + half * pagesize, pagesize, &s));
	lru_rounds(&self->lru, 3);
	EXPECT_EQ((long)(self->nr - half),
		  pages_present(self->f.addr + half * pagesize, self->nr - half))
		TH_LOG("locked pages were unmapped");
	EXPECT_EQ(0, verify_all(self->f.addr + half * pagesize, self->nr - half,
				self->f.seed, half, PAGE_ORIGINAL, self->why,
				sizeof(self->why)))
		TH_LOG("locked pages: %s", self->why);
	EXPECT_EQ(0, verify_all(self->f.addr, half, self->f.seed, 0,
				PAGE_ORIGINAL | PAGE_ZERO, self->why,
				sizeof(self->why)))
		TH_LOG("unlocked pages: %s", self->why);
	munlock(self->f.addr, self->size);
}

/*
 * A transient extra reference during reclaim (vmsplice into a pipe, then
 * drained) must leave the folio lazyfree: smaps LazyFree still counts it
 * and the next reclaim frees it. Guards against a failed discard marking
 * a clean folio swap-backed (seed 001, patch 1: swapbacked only if dirty).
 */
TEST_F(lazyfree, transient_ref)
{
	struct smaps_sum s;
	int p[2];

	FOLIO_BUILD(self, 16);
	MAKE_LAZYFREE(self);
	ASSERT_EQ(0, hold_ref(self->f.addr, p));
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	EXPECT_EQ((long)self->nr, pages_present(self->f.addr, self->nr))
		TH_LOG("a folio with an extra reference was discarded");
	drop_ref(p);
	ASSERT_EQ(0, smaps_range(self->f.addr, self->size, &s));
	EXPECT_EQ((long)(self->size / 1024), s.lazyfree)
		TH_LOG("smaps LazyFree after the failed discard: the folio lost its lazyfree state");
	ASSERT_EQ(0, pageout(self->f.addr, self->size));
	EXPECT_EQ(0, pages_present(self->f.addr, self->nr))
		TH_LOG("the second reclaim did not free it");
	EXPECT_EQ(0, verify_all(self->f.addr, self->nr, self->f.seed, 0,
				PAGE_ZERO, self->why, sizeof(self->why)))
		TH_LOG("%s", self->why);
}

/* PMD-mapped THP only. */
FIXTURE(lazyfree_pmd)
{
	struct kmsg_watch kmsg;
	struct large_folio f;
	char why[512];
};

FIXTURE_SETUP(lazyfree_pmd)
{
	FOLIO_SETUP(pmdsize);
}

FIXTURE_TEARDOWN(lazyfree_pmd)
{
	folio_destroy(&self->f);
	FOLIO_TEARDOWN();
}

/*
 * A PMD-mapped lazyfree THP with one subpage written after MADV_FREE:
 * reclaim must skip it without splitting the PMD (seed 001, patch 4/4):
 * thp_split_pmd does not move, AnonHugePages is unchanged, data kept.
 */
TEST_F(lazyfree_pmd, redirty_no_split)
{
	size_t nr = pmdsize / pagesize;
	bool *written = calloc(nr, sizeof(bool));
	char *copy = malloc(pmdsize);
	struct counters c;
	struct smaps_sum s;
	int ret;

	ASSERT_NE(NULL, written);
	ASSERT_NE(NULL, copy);
	ret = folio_build(pmdsize, -1, pattern_seed(17), &self->f, self->why,
			  sizeof(self->why));
	if (ret == -EAGAIN)
		SKIP(return, "no PMD-sized folio: %s", self->why);
	ASSERT_EQ(0, ret) TH_LOG("%s", self->why);
	ASSERT_EQ(0, madvise(self->f.addr, pmdsize, MADV_FREE));
	written[nr / 2] = true;
	self->f.addr[nr / 2 * pagesize] ^= 0x5a;
	memcpy(copy, self->f.addr, pmdsize);
	counters_begin(&c, pmdsize, "vm:thp_split_pmd", NULL);
	ASSERT_EQ(0, pageout(self->f.addr, pmdsize));
	ASSERT_EQ(0, smaps_range(self->f.addr, pmdsize, &s));
	EXPECT_EQ(0, counters_delta(&c, "vm:thp_split_pmd"))
		TH_LOG("reclaim split the PMD of a redirtied lazyfree THP");
	EXPECT_EQ((long)(pmdsize / 1024), s.anon_huge)
		TH_LOG("AnonHugePages after reclaim");
	EXPECT_EQ(0, verify_written(self->f.addr, copy, nr, written,
				    self->f.seed, 0, PAGE_ORIGINAL, self->why,
				    sizeof(self->why)))
		TH_LOG("%s", self->why);
	free(written);
	free(copy);
}

FOLIO_TEST_MAIN
