// SPDX-License-Identifier: GPL-2.0
/*
 * Reclaim of file-backed large folios through try_to_unmap_one(), which
 * unmaps the PTEs a page-cache or shmem folio has in one VMA and page
 * table as one batch (folio_unmap_pte_batch): the batch must carry the
 * dirty bit of every PTE into the folio, stop at the end of the VMA and of
 * the page table, leave a VM_LOCKED VMA alone, count RssFile/RssShmem by
 * its pages, and never give a refault the wrong file offset. Zap
 * (MADV_DONTNEED, munmap) batches the same way and must keep dirt too.
 *
 * Backings: ext4 and xfs made for the run on loop devices (in a private
 * mount namespace over a private tmpfs, so nothing outlives the program),
 * and shmem (memfd) at every shmem folio size the kernel offers. A file's
 * page i holds the pattern of its file page index, so a page of another
 * offset is told apart from a lost one.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/loop.h>
#include <linux/userfaultfd.h>

#include "../kselftest_harness.h"
#include "folio_test.h"

#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 1
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif

extern char **environ;

/* ---- scratch file systems ------------------------------------------------ */

/*
 * Made once in main(), before the harness forks the tests: every test
 * process shares the mount namespace, and when the last of them exits the
 * mounts, loop devices (autoclear) and images (on the private tmpfs) go.
 */
#define SCRATCH_TOP "/tmp"

struct scratch_fs {
	const char *type;
	const char *mkfs_force;	/* mkfs's "overwrite" flag */
	size_t mb;		/* xfs wants 300 MB at least */
	char dir[64];
	char why[200];		/* why it is not mounted */
	bool mounted;
};

enum { FS_EXT4, FS_XFS, FS_NR };

static struct scratch_fs scratch[FS_NR] = {
	[FS_EXT4] = { "ext4", "-F", 64 },
	[FS_XFS] = { "xfs", "-f", 320 },
};

/* Run argv with output discarded: its exit status, or -errno. */
static int run_quiet(char *const argv[])
{
	posix_spawn_file_actions_t fa;
	int ret, status;
	pid_t pid;

	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	ret = posix_spawnp(&pid, argv[0], &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (ret)
		return -ret;
	if (waitpid(pid, &status, 0) < 0)
		return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* A free loop device backed by image, detached on its last close. */
static int loop_attach(const char *image, char *dev, size_t len)
{
	int img = open(image, O_RDWR | O_CLOEXEC), ctl, n, loop = -1;

	if (img < 0)
		return -errno;
	ctl = open("/dev/loop-control", O_RDWR | O_CLOEXEC);
	if (ctl < 0) {
		close(img);
		return -errno;
	}
	/* Another program may take the device between the two calls: retry. */
	for (int tries = 0; tries < 10 && loop < 0; tries++) {
		struct loop_config cfg = {
			.fd = img,
			.info.lo_flags = LO_FLAGS_AUTOCLEAR,
		};

		n = ioctl(ctl, LOOP_CTL_GET_FREE);
		if (n < 0)
			break;
		snprintf(dev, len, "/dev/loop%d", n);
		loop = open(dev, O_RDWR | O_CLOEXEC);
		if (loop >= 0 && ioctl(loop, LOOP_CONFIGURE, &cfg)) {
			close(loop);
			loop = -1;
		}
	}
	n = loop < 0 ? -(errno ? errno : EBUSY) : loop;
	close(ctl);
	close(img);
	return n;
}

static void scratch_make(struct scratch_fs *fs)
{
	char image[64], dev[32], mkfs[32];
	char *argv[] = { mkfs, "-q", (char *)fs->mkfs_force, dev, NULL };
	int fd, loop, ret;

	snprintf(image, sizeof(image), "%s/%s.img", SCRATCH_TOP, fs->type);
	snprintf(mkfs, sizeof(mkfs), "mkfs.%s", fs->type);
	fd = open(image, O_CREAT | O_RDWR | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, fs->mb << 20)) {
		snprintf(fs->why, sizeof(fs->why), "image %s: %s", image,
			 strerror(errno));
		if (fd >= 0)
			close(fd);
		return;
	}
	close(fd);
	loop = loop_attach(image, dev, sizeof(dev));
	if (loop < 0) {
		snprintf(fs->why, sizeof(fs->why), "no loop device: %s",
			 strerror(-loop));
		return;
	}
	ret = run_quiet(argv);
	if (ret) {
		snprintf(fs->why, sizeof(fs->why), ret == -ENOENT ?
			 "%s not found" : "%s failed (%d)", mkfs, ret);
		close(loop);
		return;
	}
	snprintf(fs->dir, sizeof(fs->dir), "%s/%s", SCRATCH_TOP, fs->type);
	if (mkdir(fs->dir, 0700) || mount(dev, fs->dir, fs->type, 0, NULL))
		snprintf(fs->why, sizeof(fs->why), "mount -t %s %s: %s",
			 fs->type, dev, strerror(errno));
	else
		fs->mounted = true;
	close(loop);		/* the mount holds it now */
}

static void scratch_prepare(void)
{
	const char *path = getenv("PATH");
	char newpath[4096];

	/* mkfs lives in sbin, which a user's PATH may lack */
	snprintf(newpath, sizeof(newpath), "%s:/usr/sbin:/sbin",
		 path ? path : "/usr/bin:/bin");
	setenv("PATH", newpath, 1);
	if (unshare(CLONE_NEWNS) ||
	    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) ||
	    mount("folio_scratch", SCRATCH_TOP, "tmpfs", 0, "mode=0700")) {
		for (int i = 0; i < FS_NR; i++)
			snprintf(scratch[i].why, sizeof(scratch[i].why),
				 "private mount namespace with a tmpfs on %s: %s",
				 SCRATCH_TOP, strerror(errno));
		return;
	}
	for (int i = 0; i < FS_NR; i++)
		scratch_make(&scratch[i]);
}

/* ---- the file and its mapping ---------------------------------------------- */

/*
 * The file holds three folio-sized chunks; the folio under test is the
 * middle one (so a batch or refault that strays finds other data). Page
 * i of the file holds the pattern of (seed, i); first is the folio's first
 * file page.
 */
struct fm {
	struct lru_reclaim lru;
	bool shmem;
	int fd;
	size_t size, nr;
	off_t off;
	uint64_t first, seed;
	char *resv, *map;	/* reservation; the test's mapping in it */
	size_t resv_len, mapped;
	int swappiness;		/* LRU: 0 for file pages, 200 for shmem */
	pid_t child;
	char why[512];
};

static void fm_init(struct fm *m, size_t size, bool shmem)
{
	memset(m, 0, sizeof(*m));
	m->fd = -1;
	m->size = size;
	m->nr = size / pagesize;
	m->off = size;
	m->first = m->off / pagesize;
	m->shmem = shmem;
	m->swappiness = shmem ? 200 : 0;
	m->seed = pattern_seed(7);
	m->resv_len = 3 * pmdsize + size;
	m->resv = mmap_aligned(m->resv_len, pmdsize, 0);
	if (m->resv == MAP_FAILED)
		m->resv = NULL;
}

static void fm_unmap(struct fm *m)
{
	if (m->map && m->resv)
		mmap(m->map, m->mapped * pagesize, PROT_NONE,
		     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	m->map = NULL;
	m->mapped = 0;
}

static void fm_fini(struct fm *m)
{
	if (m->child > 0) {
		kill(m->child, SIGKILL);
		waitpid(m->child, NULL, 0);
	}
	fm_unmap(m);
	if (m->resv)
		munmap(m->resv, m->resv_len);
	if (m->fd >= 0)
		close(m->fd);
	lru_reclaim_fini(&m->lru);
}

/*
 * Map the folio (flags MAP_SHARED or MAP_PRIVATE) PMD-aligned and fault
 * every page in by reading. MADV_NOHUGEPAGE keeps even a PMD-sized folio
 * mapped by PTEs: the batch, not the PMD path, is under test.
 */
static int fm_map(struct fm *m, int flags)
{
	volatile char sink;

	fm_unmap(m);
	m->map = mmap(m->resv + pmdsize, m->size, PROT_READ | PROT_WRITE,
		      flags | MAP_FIXED, m->fd, m->off);
	if (m->map == MAP_FAILED) {
		m->map = NULL;
		return -errno;
	}
	m->mapped = m->nr;
	if (madvise(m->map, m->size, MADV_NOHUGEPAGE))
		return -errno;
	for (size_t i = 0; i < m->nr; i++)
		sink = m->map[i * pagesize];
	(void)sink;
	return 0;
}

/*
 * MADV_COLD: PTEs old, folio inactive, so that LRU reclaim tries the unmap
 * at once instead of rotating a referenced folio. Only while the whole
 * folio is mapped here: MADV_COLD of part of a large folio splits it.
 */
static int fm_cold(struct fm *m)
{
	return madvise(m->map, m->mapped * pagesize, MADV_COLD) ? -errno : 0;
}

/* Move the mapping so that a PMD boundary falls before folio page k. */
static int fm_move(struct fm *m, size_t k)
{
	char *dst = m->resv + 3 * pmdsize - k * pagesize;

	if (mremap(m->map, m->size, m->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst) == MAP_FAILED)
		return -errno;
	/* keep the reservation whole where the mapping was */
	mmap(m->map, m->size, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	m->map = dst;
	return 0;
}

/* Does the mapping map one large folio of the size? 0, or -EAGAIN and why. */
static int fm_is_large(struct fm *m)
{
	struct large_folio f = {
		.addr = m->map, .size = m->size, .nr = m->nr, .cross = -1,
	};

	return folio_check(&f, m->why, sizeof(m->why)) ? -EAGAIN : 0;
}

/* Is the whole folio one large folio in the page cache? -EAGAIN if not. */
static int fm_check_folio(struct fm *m)
{
	int ret = fm_map(m, MAP_SHARED);

	if (ret) {
		snprintf(m->why, sizeof(m->why), "mmap: %s", strerror(-ret));
		return ret;
	}
	ret = fm_is_large(m);
	fm_unmap(m);
	return ret;
}

/*
 * File: write the three chunks (one write each, so that each becomes one
 * folio of the chunk's size on a file system with large folios), fsync.
 */
static int fm_file_fill(struct fm *m, off_t from, size_t chunks)
{
	char *buf = malloc(m->size);
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	for (size_t c = 0; c < chunks && !ret; c++) {
		off_t at = from + c * m->size;

		pattern_fill_range(buf, m->nr, m->seed, at / pagesize);
		if (pwrite(m->fd, buf, m->size, at) != (ssize_t)m->size)
			ret = errno ? -errno : -EIO;
	}
	free(buf);
	if (!ret && fsync(m->fd))
		ret = -errno;
	return ret;
}

/*
 * Shmem: folios come from faults (a write(2) gets small ones), so each
 * chunk is read-faulted through a temporary MADV_HUGEPAGE mapping; the
 * pattern then goes in by pwrite unless clean is asked for: a clean folio
 * is zero-filled and not dirty, so the only record of a later store
 * through a mapping is its PTE's dirty bit.
 */
static int fm_shmem_fill(struct fm *m, off_t from, size_t chunks, bool clean)
{
	size_t len = chunks * m->size;
	char *buf = malloc(len), *tmp;
	volatile char sink;
	int ret = 0;

	if (!buf)
		return -ENOMEM;
	tmp = mmap_aligned(len, m->size, 0);
	if (tmp == MAP_FAILED ||
	    mmap(tmp, len, PROT_READ, MAP_SHARED | MAP_FIXED, m->fd, from) == MAP_FAILED ||
	    madvise(tmp, len, MADV_HUGEPAGE)) {
		free(buf);
		return -errno;
	}
	for (size_t i = 0; i < len / pagesize; i++)
		sink = tmp[i * pagesize];
	(void)sink;
	munmap(tmp, len);
	if (!clean) {
		pattern_fill_range(buf, len / pagesize, m->seed, from / pagesize);
		if (pwrite(m->fd, buf, len, from) != (ssize_t)len)
			ret = errno ? -errno : -EIO;
	}
	free(buf);
	return ret;
}

/*
 * A new folio for the folio's chunk, with the pattern: after reclaim gave
 * back small folios (a clean file folio read back by small readahead, a
 * shmem folio swapped in page by page).
 */
static int fm_refresh(struct fm *m)
{
	if (m->shmem) {
		if (fallocate(m->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			      m->off, m->size))
			return -errno;
		return fm_shmem_fill(m, m->off, 1, false);
	}
	if (fsync(m->fd) ||
	    posix_fadvise(m->fd, m->off, m->size, POSIX_FADV_DONTNEED))
		return -errno;
	return fm_file_fill(m, m->off, 1);
}

/*
 * Pages of the folio's file range in the page cache (shmem: in memory,
 * not swapped), seen through mincore() of a mapping that faults nothing.
 */
static long fm_cached(struct fm *m)
{
	unsigned char *vec = malloc(m->nr);
	long n = -1;
	char *p;

	p = mmap(NULL, m->size, PROT_READ, MAP_SHARED, m->fd, m->off);
	if (vec && p != MAP_FAILED && !mincore(p, m->size, vec))
		for (size_t i = n = 0; i < m->nr; i++)
			n += vec[i] & 1;
	if (p != MAP_FAILED)
		munmap(p, m->size);
	free(vec);
	return n;
}

/*
 * What the file holds for the folio's pages, read with pread(). A file
 * system's cache is written back and dropped first (so the bytes come from
 * the disk, not from a folio whose dirt was lost): the caller has
 * unmapped the file. Page i with written[i] must equal copy's page i,
 * the others must be in class others of the pattern. 0 when so.
 */
static int fm_file_verify(struct fm *m, const bool *written, const char *copy,
			  unsigned int others)
{
	char *buf = malloc(m->size);
	int bad;

	if (!buf)
		return -1;
	if (!m->shmem) {
		long cached;

		if (fsync(m->fd)) {
			snprintf(m->why, sizeof(m->why), "fsync: %s", strerror(errno));
			free(buf);
			return -1;
		}
		/*
		 * A folio with an extra reference (in a per-CPU LRU batch,
		 * or reclaim's just now) is not dropped: drain, try again.
		 */
		for (int tries = 0; tries < 10; tries++) {
			lru_drain();
			posix_fadvise(m->fd, 0, 0, POSIX_FADV_DONTNEED);
			cached = fm_cached(m);
			if (!cached)
				break;
			usleep(2000);
		}
		if (cached) {
			snprintf(m->why, sizeof(m->why),
				 "%ld pages still in the page cache after fsync and POSIX_FADV_DONTNEED",
				 cached);
			free(buf);
			return -1;
		}
	}
	if (pread(m->fd, buf, m->size, m->off) != (ssize_t)m->size) {
		snprintf(m->why, sizeof(m->why), "pread: %s", strerror(errno));
		free(buf);
		return -1;
	}
	bad = verify_written(buf, copy, m->nr, written, m->seed, m->first,
			     others, m->why, sizeof(m->why));
	free(buf);
	return bad;
}

/* The mapping's view: the same rule, page i of the mapping being folio page i. */
static int fm_map_verify(struct fm *m, const bool *written, const char *copy,
			 unsigned int others)
{
	return verify_written(m->map, copy, m->mapped, written, m->seed,
			      m->first, others, m->why, sizeof(m->why));
}

/* Store into the given pages of the mapping; note them in written and copy. */
static void fm_write(struct fm *m, const size_t *pages, size_t n, bool *written,
		     char *copy)
{
	for (size_t i = 0; i < n; i++) {
		char *p = m->map + pages[i] * pagesize;

		p[1] ^= 0x5a;
		p[pagesize - 2] ^= 0xa5;
		written[pages[i]] = true;
	}
	memcpy(copy, m->map, m->mapped * pagesize);
}

/* A written[] and copy for the folio, freed by the caller. */
static int fm_alloc_track(struct fm *m, bool **written, char **copy)
{
	*written = calloc(m->nr, sizeof(bool));
	*copy = malloc(m->size);
	return *written && *copy ? 0 : -ENOMEM;
}

/*
 * How much one LRU reclaim round asks for: enough to reach the folio past
 * what else the test's cgroup holds, little enough that the round ends
 * before it runs out of reclaimable pages (where reclaim is throttled).
 */
static size_t fm_reclaim_bytes(const struct fm *m)
{
	return m->size > (512 << 10) ? 2 * m->size : 1 << 20;
}

static const char *status_field(const struct fm *m)
{
	return m->shmem ? "status:RssShmem" : "status:RssFile";
}

/* ---- bodies shared by the file-system and shmem fixtures ------------------ */

#define FM_ASSERT_OK(expr, what)					\
	do {								\
		int __r = (expr);					\
		if (__r == -EAGAIN)					\
			SKIP(return, "%s: no %zu kB folio: %s", what,	\
			     m->size / 1024, m->why);			\
		ASSERT_EQ(0, __r) TH_LOG("%s: %s (%s)", what,		\
					 strerror(-__r), m->why);	\
	} while (0)

/*
 * Written pages of a MAP_SHARED mapping, MADV_PAGEOUT: the mapping reads
 * the writes back, and after unmap the file holds them.
 */
static void body_dirty_pageout(struct __test_metadata *_metadata, struct fm *m,
			       const size_t *pages, size_t n, bool clean_folio)
{
	unsigned int others = clean_folio ? PAGE_ZERO : PAGE_ORIGINAL;
	bool *written;
	char *copy;

	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	fm_write(m, pages, n, written, copy);
	ASSERT_EQ(0, pageout(m->map, m->size));
	EXPECT_EQ(0, fm_map_verify(m, written, copy, others))
		TH_LOG("mapping after MADV_PAGEOUT: %s", m->why);
	fm_unmap(m);
	EXPECT_EQ(0, fm_file_verify(m, written, copy, others))
		TH_LOG("file after MADV_PAGEOUT: %s", m->why);
	free(written);
	free(copy);
}

/*
 * Written pages, then the mapping zapped (MADV_DONTNEED or munmap), then
 * the folio reclaimed: the file holds the writes.
 */
static void body_zap(struct __test_metadata *_metadata, struct fm *m,
		     size_t page, bool dontneed)
{
	bool *written;
	char *copy;

	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	fm_write(m, &page, 1, written, copy);
	if (dontneed)
		ASSERT_EQ(0, madvise(m->map, m->size, MADV_DONTNEED));
	fm_unmap(m);
	if (m->shmem) {
		/*
		 * Shmem has no writeback to clean it: reclaim it through a
		 * clean mapping. Dirty, it goes to swap (or stays); clean, it
		 * would be dropped, and with it the write.
		 */
		FM_ASSERT_OK(fm_map(m, MAP_SHARED), "remapping");
		ASSERT_EQ(0, pageout(m->map, m->size));
		fm_unmap(m);
	}
	EXPECT_EQ(0, fm_file_verify(m, written, copy,
				    m->shmem ? PAGE_ZERO : PAGE_ORIGINAL))
		TH_LOG("file after %s: %s", dontneed ? "MADV_DONTNEED" : "munmap",
		       m->why);
	free(written);
	free(copy);
}

/*
 * A MAP_SHARED mapping crossing a PMD boundary before folio page k, for
 * every k cross_next() visits: the page before the boundary and the last
 * page written, LRU
 * reclaim until nothing is mapped; the mapping refaults the right bytes,
 * and in the end the file holds every write.
 */
static void body_pmd_crossing(struct __test_metadata *_metadata, struct fm *m)
{
	bool *written;
	char *copy;

	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	for (size_t k = cross_next(m->nr, 0); k < m->nr; k = cross_next(m->nr, k)) {
		size_t pages[2] = { k - 1, m->nr - 1 };

		FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
		if (fm_is_large(m)) {
			fm_unmap(m);
			ASSERT_EQ(0, fm_refresh(m));
			memset(written, 0, m->nr);
			FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
			FM_ASSERT_OK(fm_is_large(m), "after a refresh");
		}
		fm_write(m, pages, 2, written, copy);
		ASSERT_EQ(0, fm_cold(m));
		ASSERT_EQ(0, fm_move(m, k)) TH_LOG("offset %zu: mremap: %s", k,
						   strerror(errno));
		ASSERT_LT(0, lru_until_unmapped(&m->lru, fm_reclaim_bytes(m), m->swappiness,
						m->map, m->nr, 20))
			TH_LOG("offset %zu: %ld of %zu pages still mapped after 20 reclaim rounds",
			       k, pages_present(m->map, m->nr), m->nr);
		ASSERT_EQ(0, fm_map_verify(m, written, copy, PAGE_ORIGINAL))
			TH_LOG("offset %zu, after reclaim: %s", k, m->why);
		fm_unmap(m);
		/* clean again: reclaim would stall on a dirty file folio */
		if (!m->shmem)
			ASSERT_EQ(0, fsync(m->fd));
	}
	EXPECT_EQ(0, fm_file_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("file: %s", m->why);
	free(written);
	free(copy);
}

/*
 * The folio's first half in one VMA, its second half in the next (mlocked,
 * so reclaim must leave it), the last page of the first written; LRU
 * reclaim until the first half is unmapped: the second keeps every PTE,
 * the data is right. A batch that ran on past the first VMA's end would
 * find PTEs mapping the very next pages of the same folio.
 */
static void body_vma_end(struct __test_metadata *_metadata, struct fm *m)
{
	size_t half = m->nr / 2, last = half - 1;
	struct pm_entry *before = calloc(m->nr, sizeof(*before));
	struct pm_entry *after = calloc(m->nr, sizeof(*after));
	bool *written;
	char *copy;

	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	ASSERT_TRUE(before && after);
	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	FM_ASSERT_OK(fm_check_folio(m), "before mapping");
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	fm_write(m, &last, 1, written, copy);
	ASSERT_EQ(0, fm_cold(m));
	/* ONFAULT: the pages are there; populating would make their PTEs young */
	ASSERT_EQ(0, syscall(__NR_mlock2, m->map + half * pagesize,
			     (m->nr - half) * pagesize, MLOCK_ONFAULT))
		TH_LOG("mlock2: %s", strerror(errno));
	ASSERT_EQ(0, pagemap_read(m->map, m->nr, before));
	ASSERT_LT(0, lru_until_unmapped(&m->lru, fm_reclaim_bytes(m),
					m->swappiness, m->map, half, 10))
		TH_LOG("%ld of the first VMA's %zu pages still mapped after 10 reclaim rounds",
		       pages_present(m->map, half), half);
	ASSERT_EQ(0, pagemap_read(m->map, m->nr, after));
	EXPECT_EQ(0, pm_unchanged(before + half, after + half, m->nr - half,
				  m->why, sizeof(m->why)))
		TH_LOG("the next VMA's (mlocked) pages, numbered from the VMA: %s",
		       m->why);
	EXPECT_EQ(0, fm_map_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("mapping after reclaim: %s", m->why);
	munlock(m->map, m->size);
	fm_unmap(m);
	EXPECT_EQ(0, fm_file_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("file: %s", m->why);
	free(before);
	free(after);
	free(written);
	free(copy);
}

/*
 * One page in the middle of a MAP_SHARED mapping mlocked (its own VMA),
 * LRU reclaim until the pages before it are unmapped (the rmap walk meets
 * their VMA first, then gives up at the locked one): the locked page stays
 * mapped to the same PFN; all data right.
 */
static void body_mlock_one(struct __test_metadata *_metadata, struct fm *m)
{
	size_t locked = m->nr / 2;
	struct pm_entry before, after;
	bool *written;
	char *copy;

	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	FM_ASSERT_OK(fm_check_folio(m), "before mapping");
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	memcpy(copy, m->map, m->size);		/* before MADV_COLD: no young PTE after */
	ASSERT_EQ(0, fm_cold(m));
	ASSERT_EQ(0, mlock(m->map + locked * pagesize, pagesize))
		TH_LOG("mlock: %s", strerror(errno));
	ASSERT_EQ(0, pagemap_read(m->map + locked * pagesize, 1, &before));
	ASSERT_LT(0, lru_until_unmapped(&m->lru, fm_reclaim_bytes(m),
					m->swappiness, m->map, locked, 10))
		TH_LOG("%ld of the %zu pages before the mlocked one still mapped after 10 reclaim rounds",
		       pages_present(m->map, locked), locked);
	ASSERT_EQ(0, pagemap_read(m->map + locked * pagesize, 1, &after));
	EXPECT_TRUE(after.present && after.pfn == before.pfn)
		TH_LOG("mlocked page %zu: %s, PFN %#llx, was %#llx", locked,
		       pm_state(&after), (unsigned long long)after.pfn,
		       (unsigned long long)before.pfn);
	EXPECT_EQ(0, fm_map_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("mapping after reclaim: %s", m->why);
	munlock(m->map, m->size);
	fm_unmap(m);
	EXPECT_EQ(0, fm_file_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("file: %s", m->why);
	free(written);
	free(copy);
}

/* Parent and child handshakes over a pipe pair. */
struct duo {
	int to_child[2], to_parent[2];
};

static bool duo_send(int fd)
{
	char c = 1;

	return write(fd, &c, 1) == 1;
}

static bool duo_wait(int fd)
{
	char c;

	return read(fd, &c, 1) == 1;
}

/*
 * The child: checks the inherited mapping and a mapping of its own against
 * the parent's writes, writes the last page itself. Exit status 0 when
 * every check held; the problem in msg (shared memory) otherwise.
 */
static int fork_child(struct fm *m, struct duo *d, char *copy, bool *written,
		      char *msg, size_t len)
{
	char *own;

	close(d->to_child[1]);
	close(d->to_parent[0]);
	if (!duo_wait(d->to_child[0]))
		return 2;
	if (verify_written(m->map, copy, m->nr, written, m->seed, m->first,
			   PAGE_ORIGINAL, msg, len))
		return 3;
	own = mmap(NULL, m->size, PROT_READ, MAP_SHARED, m->fd, m->off);
	if (own == MAP_FAILED) {
		snprintf(msg, len, "child's mmap: %s", strerror(errno));
		return 4;
	}
	if (verify_written(own, copy, m->nr, written, m->seed, m->first,
			   PAGE_ORIGINAL, msg, len))
		return 5;
	m->map[m->size - 3] ^= 0x33;
	if (own[m->size - 3] != m->map[m->size - 3]) {
		snprintf(msg, len, "child: its write through one mapping not seen through the other");
		return 6;
	}
	return duo_send(d->to_parent[1]) ? 0 : 7;
}

/*
 * The parent writes, fork shares the MAP_SHARED mapping; reclaim through
 * the LRU (MADV_PAGEOUT skips a folio another process maps) unmaps both;
 * the child sees the writes in the inherited and in a new mapping and
 * writes the last page, which the parent then sees, and so does the file.
 */
static void body_fork(struct __test_metadata *_metadata, struct fm *m)
{
	size_t pages[2] = { 0, m->nr / 2 };
	struct duo d;
	bool *written;
	char *copy, *msg;
	int status;

	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	msg = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, msg);
	msg[0] = '\0';
	FM_ASSERT_OK(fm_check_folio(m), "before mapping");
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	fm_write(m, pages, 2, written, copy);
	ASSERT_EQ(0, fm_cold(m));
	ASSERT_EQ(0, pipe(d.to_child));
	ASSERT_EQ(0, pipe(d.to_parent));
	m->child = fork();
	ASSERT_LE(0, m->child);
	if (!m->child)
		_exit(fork_child(m, &d, copy, written, msg, 4096));
	close(d.to_child[0]);
	close(d.to_parent[1]);
	ASSERT_LT(0, lru_until_unmapped(&m->lru, fm_reclaim_bytes(m), m->swappiness,
					 m->map, m->nr, 20))
		TH_LOG("%ld of %zu pages still mapped after 20 reclaim rounds",
		       pages_present(m->map, m->nr), m->nr);
	ASSERT_TRUE(duo_send(d.to_child[1]));
	duo_wait(d.to_parent[0]);
	ASSERT_EQ(m->child, waitpid(m->child, &status, 0));
	m->child = 0;
	ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
		TH_LOG("child (status %#x): %s", status, msg);
	copy[m->size - 3] ^= 0x33;
	written[m->nr - 1] = true;
	EXPECT_EQ(0, fm_map_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("parent after the child's write: %s", m->why);
	fm_unmap(m);
	EXPECT_EQ(0, fm_file_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("file: %s", m->why);
	munmap(msg, 4096);
	free(written);
	free(copy);
}

/* ---- file systems ------------------------------------------------------------ */

FIXTURE(filemap)
{
	struct kmsg_watch kmsg;
	struct fm m;
};

FIXTURE_VARIANT(filemap)
{
	int fs;
	size_t size_kb;
};

#define FS_VARIANT(fs_, type, kb)					\
	FIXTURE_VARIANT_ADD(filemap, type##_##kb##kB) { .fs = fs_, .size_kb = kb }

FS_VARIANT(FS_EXT4, ext4, 16);
FS_VARIANT(FS_EXT4, ext4, 64);
FS_VARIANT(FS_EXT4, ext4, 2048);
FS_VARIANT(FS_XFS, xfs, 16);
FS_VARIANT(FS_XFS, xfs, 64);
FS_VARIANT(FS_XFS, xfs, 2048);

FIXTURE_SETUP(filemap)
{
	struct scratch_fs *fs = &scratch[variant->fs];
	struct fm *m = &self->m;
	char path[128];
	int ret;

	fm_init(m, variant->size_kb * 1024, false);
	FOLIO_SETUP_COMMON();
	if (!fs->mounted)
		SKIP(return, "no %s file system: %s", fs->type, fs->why);
	ASSERT_NE(NULL, m->resv);
	/* Before the file's pages exist: a cgroup driver charges them there. */
	lru_reclaim_init(&m->lru);
	snprintf(path, sizeof(path), "%s/file-%d", fs->dir, getpid());
	m->fd = open(path, O_CREAT | O_RDWR | O_TRUNC | O_CLOEXEC, 0600);
	ASSERT_LE(0, m->fd) TH_LOG("%s: %s", path, strerror(errno));
	unlink(path);
	ASSERT_EQ(0, fm_file_fill(m, 0, 3));
	ret = fm_check_folio(m);
	if (ret == -EAGAIN)
		SKIP(return, "%s gave no %zu kB page-cache folio for a %zu kB write: %s",
		     fs->type, variant->size_kb, variant->size_kb, m->why);
	ASSERT_EQ(0, ret) TH_LOG("%s", m->why);
}

FIXTURE_TEARDOWN(filemap)
{
	fm_fini(&self->m);
	FOLIO_TEARDOWN();
}

/*
 * A clean folio in a MAP_SHARED (then MAP_PRIVATE) mapping, MADV_PAGEOUT:
 * every PTE goes, RssFile falls by the folio, the page cache drops it, and
 * a refault reads each page of its own file offset. Guards against a batch
 * that leaves PTEs behind (the folio cannot be freed), miscounts RssFile
 * ("Bad rss-counter state") or mapcounts ("Bad page map"), or a refault
 * of the wrong offset.
 */
static void clean_case(struct __test_metadata *_metadata, struct fm *m,
		       int flags)
{
	struct counters c;
	long cached;

	FM_ASSERT_OK(fm_map(m, flags), "mapping");
	counters_begin(&c, m->size, status_field(m), NULL);
	ASSERT_EQ(0, pageout(m->map, m->size));
	EXPECT_EQ(0, pages_present(m->map, m->nr))
		TH_LOG("%ld of %zu pages still mapped after MADV_PAGEOUT",
		       pages_present(m->map, m->nr), m->nr);
	if (rss_exact())
		EXPECT_EQ(-(long)(m->size / 1024), counters_delta(&c, status_field(m)))
			TH_LOG("RssFile change (kB) for a %zu kB folio paged out",
			       m->size / 1024);
	cached = fm_cached(m);
	EXPECT_EQ(0, cached)
		TH_LOG("%ld of %zu pages still in the page cache", cached, m->nr);
	EXPECT_EQ(0, verify_all(m->map, m->nr, m->seed, m->first,
				PAGE_ORIGINAL, m->why, sizeof(m->why)))
		TH_LOG("refault: %s", m->why);
}

TEST_F(filemap, clean_shared)
{
	clean_case(_metadata, &self->m, MAP_SHARED);
}

TEST_F(filemap, clean_private)
{
	clean_case(_metadata, &self->m, MAP_PRIVATE);
}

/*
 * Dirty MAP_SHARED pages, MADV_PAGEOUT, then the file read from disk: the
 * whole folio, its first or only its last page written. Guards against
 * reclaim dropping a dirty file folio, the write lost. (On ext4 and xfs
 * page_mkwrite dirties the folio at the write fault, so a batch that
 * loses a PTE's dirty bit cannot show here: shmem's dirty_* catch that.)
 */
TEST_F(filemap, dirty_all)
{
	size_t *pages = malloc(self->m.nr * sizeof(size_t));

	ASSERT_NE(NULL, pages);
	for (size_t i = 0; i < self->m.nr; i++)
		pages[i] = i;
	body_dirty_pageout(_metadata, &self->m, pages, self->m.nr, false);
	free(pages);
}

TEST_F(filemap, dirty_first)
{
	size_t page = 0;

	body_dirty_pageout(_metadata, &self->m, &page, 1, false);
}

TEST_F(filemap, dirty_last)
{
	size_t page = self->m.nr - 1;

	body_dirty_pageout(_metadata, &self->m, &page, 1, false);
}

/*
 * MAP_PRIVATE with its first, middle and last page copied on write (small
 * anonymous pages inside the file folio's range), LRU reclaim of the rest:
 * the copies keep the process's data, the other pages refault the file's,
 * and the file never sees the private writes. Guards against a batch that
 * takes the anonymous copies for pages of the file folio.
 */
TEST_F(filemap, private_cow)
{
	struct fm *m = &self->m;
	size_t pages[3] = { 0, m->nr / 2, m->nr - 1 };
	bool *written, *none;
	char *copy;

	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	ASSERT_EQ(0, fm_alloc_track(m, &written, &copy));
	none = calloc(m->nr, sizeof(bool));
	ASSERT_NE(NULL, none);
	FM_ASSERT_OK(fm_map(m, MAP_PRIVATE), "mapping");
	fm_write(m, pages, 3, written, copy);
	lru_reclaim_rounds(&m->lru, fm_reclaim_bytes(m), 100, 3);
	EXPECT_EQ(0, fm_map_verify(m, written, copy, PAGE_ORIGINAL))
		TH_LOG("private view after reclaim: %s", m->why);
	fm_unmap(m);
	EXPECT_EQ(0, fm_file_verify(m, none, copy, PAGE_ORIGINAL))
		TH_LOG("file (no private write may reach it): %s", m->why);
	free(none);
	free(written);
	free(copy);
}

/*
 * The folio mapped across a PMD boundary at every page offset, or for
 * large folios those cross_next() picks (seed 003: the batch must end with
 * the page table). Guards against a batch that reads the next page
 * table's memory as PTEs. (300 s for QEMU TCG, and FOLIO_ALL_OFFSETS=1.)
 */
TEST_F_TIMEOUT(filemap, pmd_crossing, 300)
{
	body_pmd_crossing(_metadata, &self->m);
}

/*
 * A VMA that ends inside the folio, the folio's next pages in the next
 * VMA. Guards against a batch that runs past the VMA's end into the next
 * VMA's PTEs (they map the same folio, PFNs in order).
 */
TEST_F(filemap, vma_end_inside)
{
	body_vma_end(_metadata, &self->m);
}

/*
 * One mlocked page. Guards against a batch that crosses into a VM_LOCKED
 * VMA and unmaps (and drops) an mlocked page.
 */
TEST_F(filemap, mlock_one)
{
	body_mlock_one(_metadata, &self->m);
}

/*
 * Two processes (fork, and a second mapping in the child). Guards against
 * a batch that loses the dirt of a shared folio or mixes up the two mms'
 * PTEs and counters.
 */
TEST_F(filemap, shared_fork)
{
	body_fork(_metadata, &self->m);
}

/*
 * The last or a middle page written, then MADV_DONTNEED or munmap, then
 * the file read from disk. Guards against a zap that drops a dirty file
 * folio's write (the PTE-dirty merge itself: shmem's zap_* tests).
 */
TEST_F(filemap, zap_dontneed_last)
{
	body_zap(_metadata, &self->m, self->m.nr - 1, true);
}

TEST_F(filemap, zap_munmap_middle)
{
	body_zap(_metadata, &self->m, self->m.nr / 2, false);
}

/* The folio's dirty flag (kpageflags of the PFN at addr); -1 if unknown. */
static int folio_dirty(const char *addr)
{
	struct pm_entry e;
	uint64_t flags;

	if (pagemap_read(addr, 1, &e) || !e.present || !e.pfn ||
	    !kpageflags_read(e.pfn, &flags))
		return -1;
	return kpf(flags, KPF_DIRTY);
}

/*
 * Write-notify survives reclaim that gives up: after writeback every PTE
 * of the folio is write-protected, so that the file system sees the next
 * write (page_mkwrite: the folio dirty again, mtime updated). One page
 * mlocked makes LRU reclaim abandon the unmap; then a write to the first,
 * the mlocked and the last page must each dirty the folio again. Guards
 * against a batch restored or left with the write bit set: the store
 * lands without a fault, the folio stays clean and the write is lost on
 * the next reclaim.
 */
TEST_F(filemap, write_notify)
{
	struct fm *m = &self->m;
	size_t locked = m->nr / 2;
	size_t pages[3] = { 0, locked, m->nr - 1 };
	char *lock_addr;

	if (m->lru.kind == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", m->lru.why);
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	lock_addr = m->map + locked * pagesize;
	for (size_t i = 0; i < m->nr; i++)
		m->map[i * pagesize] ^= 1;
	ASSERT_EQ(0, fm_cold(m));
	ASSERT_EQ(0, mlock(lock_addr, pagesize));
	for (size_t i = 0; i < 3; i++) {
		struct stat before, after;
		int dirty;

		ASSERT_EQ(0, fsync(m->fd));
		dirty = folio_dirty(lock_addr);
		ASSERT_EQ(0, dirty)
			TH_LOG("folio dirty flag %d after fsync, expected 0", dirty);
		lru_reclaim_rounds(&m->lru, fm_reclaim_bytes(m), m->swappiness, 3);
		ASSERT_EQ(0, fstat(m->fd, &before));
		usleep(20 * 1000);	/* past a coarse timestamp's tick */
		ASSERT_EQ(0, access_signal(m->map + pages[i] * pagesize, true));
		dirty = folio_dirty(lock_addr);
		EXPECT_EQ(1, dirty)
			TH_LOG("page %zu written after writeback and reclaim: folio dirty flag %d, expected 1 (the write did not fault)",
			       pages[i], dirty);
		ASSERT_EQ(0, fstat(m->fd, &after));
		EXPECT_TRUE(after.st_mtim.tv_sec != before.st_mtim.tv_sec ||
			    after.st_mtim.tv_nsec != before.st_mtim.tv_nsec)
			TH_LOG("page %zu written: mtime did not move", pages[i]);
	}
	munlock(lock_addr, pagesize);
}

/* ---- shmem ------------------------------------------------------------------ */

FIXTURE(shmem)
{
	struct kmsg_watch kmsg;
	struct fm m;
};

FIXTURE_VARIANT(shmem)
{
	size_t size_kb;
};

FOLIO_SIZE_VARIANTS(shmem);

/*
 * Each shmem test fills the memfd itself: with the pattern, or clean (see
 * fm_shmem_fill()). SKIP when the kernel gives no folio of the size.
 */
#define SHMEM_FILL(clean)						\
	do {								\
		struct fm *__m = &self->m;				\
		int __ret = fm_shmem_fill(__m, 0, 3, clean);			\
									\
		ASSERT_EQ(0, __ret) TH_LOG("filling the memfd: %s",	\
					   strerror(-__ret));		\
		__ret = fm_check_folio(__m);				\
		if (__ret == -EAGAIN)					\
			SKIP(return, "no %zu kB shmem folio: %s",	\
			     __m->size / 1024, __m->why);		\
		ASSERT_EQ(0, __ret) TH_LOG("%s", __m->why);		\
	} while (0)

FIXTURE_SETUP(shmem)
{
	struct fm *m = &self->m;
	size_t size = variant->size_kb * 1024;

	fm_init(m, size, true);
	FOLIO_SETUP_COMMON();
	if (!shmem_size_offered(size))
		SKIP(return, "kernel offers no %zu kB shmem folios", size / 1024);
	ASSERT_EQ(0, shmem_mthp_only(size))
		TH_LOG("cannot enable %zu kB shmem folios", size / 1024);
	ASSERT_NE(NULL, m->resv);
	lru_reclaim_init(&m->lru);
	m->fd = memfd_create("filemap", MFD_CLOEXEC);
	ASSERT_LE(0, m->fd) TH_LOG("memfd_create: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(m->fd, 3 * size));
}

FIXTURE_TEARDOWN(shmem)
{
	fm_fini(&self->m);
	FOLIO_TEARDOWN();
}

#define NEED_SWAP()							\
	do {								\
		if (!swap_active())					\
			SKIP(return, "no active swap (/proc/swaps is empty): swapon a device, e.g. zram, first"); \
	} while (0)

/*
 * MADV_PAGEOUT swaps the folio out whole: no page stays mapped, smaps
 * counts the folio as Swap, RssShmem falls by it and VmSwap (swap PTEs of
 * anonymous memory) does not move, the size's swpout counts it once; it
 * reads back right through the mapping and through a second one. Guards
 * against a batch that leaves pages mapped (a short swap-out), puts swap
 * entries into a shmem mapping's PTEs, miscounts RSS, or loses data.
 */
TEST_F(shmem, pageout_swap)
{
	struct fm *m = &self->m;
	struct smaps_sum s;
	struct counters c;
	char *second;
	long cached;

	NEED_SWAP();
	SHMEM_FILL(false);
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	counters_begin(&c, m->size, "status:RssShmem", "status:VmSwap",
		       "thp:swpout", NULL);
	ASSERT_EQ(0, pageout(m->map, m->size));
	EXPECT_EQ(0, pages_present(m->map, m->nr))
		TH_LOG("%ld of %zu pages still mapped after MADV_PAGEOUT",
		       pages_present(m->map, m->nr), m->nr);
	cached = fm_cached(m);
	EXPECT_EQ(0, cached)
		TH_LOG("%ld of %zu pages still in memory after MADV_PAGEOUT",
		       cached, m->nr);
	ASSERT_EQ(0, smaps_range(m->map, m->size, &s));
	EXPECT_EQ((long)(m->size / 1024), s.swap)
		TH_LOG("smaps Swap (kB) of the mapping after MADV_PAGEOUT");
	if (rss_exact())
		EXPECT_EQ(-(long)(m->size / 1024), counters_delta(&c, "status:RssShmem"))
			TH_LOG("RssShmem change (kB)");
	EXPECT_EQ(0, counters_delta(&c, "status:VmSwap"))
		TH_LOG("VmSwap change (kB): shmem swap is not the mm's");
	if (counters_has(&c, "thp:swpout"))
		EXPECT_EQ(1, counters_delta(&c, "thp:swpout"))
			TH_LOG("%zu kB swpout: the folio did not go out whole",
			       m->size / 1024);
	EXPECT_EQ(0, verify_all(m->map, m->nr, m->seed, m->first,
				PAGE_ORIGINAL, m->why, sizeof(m->why)))
		TH_LOG("after swap-in: %s", m->why);
	second = mmap(NULL, m->size, PROT_READ, MAP_SHARED, m->fd, m->off);
	ASSERT_NE(MAP_FAILED, second);
	EXPECT_EQ(0, verify_all(second, m->nr, m->seed, m->first,
				PAGE_ORIGINAL, m->why, sizeof(m->why)))
		TH_LOG("second mapping: %s", m->why);
	munmap(second, m->size);
}

/*
 * A clean (zero-filled) shmem folio written only through the mapping, so
 * that its PTEs alone are dirty: all pages, the first, or the last; then
 * MADV_PAGEOUT. Guards against a batch that does not move every PTE's
 * dirty bit into the folio: shmem drops a clean folio, and the writes read
 * back as zeros.
 */
TEST_F(shmem, dirty_all)
{
	size_t *pages = malloc(self->m.nr * sizeof(size_t));

	ASSERT_NE(NULL, pages);
	for (size_t i = 0; i < self->m.nr; i++)
		pages[i] = i;
	SHMEM_FILL(true);
	body_dirty_pageout(_metadata, &self->m, pages, self->m.nr, true);
	free(pages);
}

TEST_F(shmem, dirty_first)
{
	size_t page = 0;

	SHMEM_FILL(true);
	body_dirty_pageout(_metadata, &self->m, &page, 1, true);
}

TEST_F(shmem, dirty_last)
{
	size_t page = self->m.nr - 1;

	SHMEM_FILL(true);
	body_dirty_pageout(_metadata, &self->m, &page, 1, true);
}

/*
 * As filemap's zap tests, on a clean shmem folio: the write's only record
 * is the PTE the zap clears. Guards against a zap batch that drops it.
 */
TEST_F(shmem, zap_dontneed_last)
{
	SHMEM_FILL(true);
	body_zap(_metadata, &self->m, self->m.nr - 1, true);
}

TEST_F(shmem, zap_munmap_middle)
{
	SHMEM_FILL(true);
	body_zap(_metadata, &self->m, self->m.nr / 2, false);
}

/* As filemap's: a shmem folio across a PMD boundary, swapped by the LRU. */
TEST_F_TIMEOUT(shmem, pmd_crossing, 300)
{
	NEED_SWAP();
	SHMEM_FILL(false);
	body_pmd_crossing(_metadata, &self->m);
}

/* As filemap's: a VMA ending inside a shmem folio. */
TEST_F(shmem, vma_end_inside)
{
	NEED_SWAP();
	SHMEM_FILL(false);
	body_vma_end(_metadata, &self->m);
}

/* As filemap's: one mlocked page of a shmem folio. */
TEST_F(shmem, mlock_one)
{
	NEED_SWAP();
	SHMEM_FILL(false);
	body_mlock_one(_metadata, &self->m);
}

/* As filemap's: a shmem folio shared by fork and a second mapping. */
TEST_F(shmem, shared_fork)
{
	NEED_SWAP();
	SHMEM_FILL(false);
	body_fork(_metadata, &self->m);
}

/*
 * uffd-wp on shmem: the whole folio write-protected, MADV_PAGEOUT; every
 * page keeps PM_UFFD_WP (a PTE marker while swapped), also after it reads
 * back, and a write to each page raises exactly one uffd-wp fault. Guards
 * against a batch that clears the PTEs without leaving a uffd-wp marker
 * in each (the write after refault lands silently).
 */
TEST_F(shmem, uffd_wp)
{
	struct fm *m = &self->m;
	struct pm_entry *e = calloc(m->nr, sizeof(*e));
	struct wp_server s = { 0 };
	struct bad_pages b;
	int uffd;

	ASSERT_NE(NULL, e);
	NEED_SWAP();
	SHMEM_FILL(false);
	FM_ASSERT_OK(fm_map(m, MAP_SHARED), "mapping");
	uffd = uffd_wp_open(m->map, m->size, UFFD_FEATURE_WP_HUGETLBFS_SHMEM,
			    true, m->why, sizeof(m->why));
	if (uffd < 0)
		SKIP(return, "%s", m->why);
	ASSERT_EQ(0, pageout(m->map, m->size));
	ASSERT_EQ(0, pagemap_read(m->map, m->nr, e));
	bad_pages_init(&b, m->why, sizeof(m->why));
	for (size_t i = 0; i < m->nr; i++)
		if (e[i].present || !e[i].uffd_wp)
			bad_page(&b, "page %zu: %s, uffd-wp %d (pagemap %#llx), expected not present with uffd-wp",
				 i, pm_state(&e[i]), e[i].uffd_wp,
				 (unsigned long long)e[i].raw);
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("after MADV_PAGEOUT: %s", m->why);
	EXPECT_EQ(0, verify_all(m->map, m->nr, m->seed, m->first,
				PAGE_ORIGINAL, m->why, sizeof(m->why)))
		TH_LOG("after swap-in: %s", m->why);
	ASSERT_EQ(0, pagemap_read(m->map, m->nr, e));
	bad_pages_init(&b, m->why, sizeof(m->why));
	for (size_t i = 0; i < m->nr; i++)
		if (!e[i].uffd_wp)
			bad_page(&b, "page %zu: %s without uffd-wp after swap-in",
				 i, pm_state(&e[i]));
	EXPECT_EQ(0, bad_pages_done(&b)) TH_LOG("%s", m->why);
	ASSERT_EQ(0, wp_server_start(&s, uffd, m->map, m->nr));
	for (size_t i = 0; i < m->nr; i++)
		m->map[i * pagesize + 5] ^= 0x11;
	EXPECT_EQ(0, wp_faults_check(&s, m->why, sizeof(m->why)))
		TH_LOG("writes after swap-in: %s", m->why);
	wp_server_stop(&s);
	close(uffd);
	free(e);
}

FOLIO_TEST_MAIN_WITH(scratch_prepare)
