/* SPDX-License-Identifier: GPL-2.0 */
/*
 * folio_util: what the batched-unmap tests need to see and steer large
 * folios from user space.
 *
 *   pagemap     per-page present/swap/soft-dirty/uffd-wp/exclusive, PFN,
 *               swap type and offset
 *   kpageflags  compound head/tail, THP, anon, swapbacked, lru (root);
 *               kpagecount, how often a page is mapped
 *   settings    mTHP sizes, per-size "enabled", every THP and khugepaged
 *               file saved once and restored at exit and on signals
 *   counters    per-size stats/, /proc/vmstat, /proc/self/status as deltas
 *   smaps       Rss, LazyFree, AnonHugePages, ... of the VMAs of a range
 *   reclaim     MADV_PAGEOUT, and LRU reclaim (cgroup v2 memory.reclaim or
 *               node reclaim), repeated until a condition holds
 *   builder     one large folio of a given size, anonymous or shmem,
 *               physically contiguous, aligned or straddling a PMD
 *               boundary at any page offset
 *   patterns    per-page data unique per page and run, and a classifier
 *   kmsg        kernel-log watcher for WARNING/BUG/Bad page lines
 */
#ifndef FOLIO_UTIL_H
#define FOLIO_UTIL_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>
#include <sched.h>
#include <sys/types.h>

/* The installed uapi headers may predate these. */
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_COLD
#define MADV_COLD 20
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif
#ifndef MAP_DROPPABLE
#define MAP_DROPPABLE 0x08
#endif
#ifndef MREMAP_DONTUNMAP
#define MREMAP_DONTUNMAP 4
#endif

extern size_t pagesize;
extern size_t pmdsize;

/* Must run first: page size, PMD size, pattern seed. */
void folio_util_init(void);

/* ---- pagemap ---------------------------------------------------------- */

#define PM_PFN_MASK		((1ULL << 55) - 1)
#define PM_SOFT_DIRTY		(1ULL << 55)
#define PM_MMAP_EXCLUSIVE	(1ULL << 56)
#define PM_UFFD_WP		(1ULL << 57)
#define PM_FILE			(1ULL << 61)
#define PM_SWAP			(1ULL << 62)
#define PM_PRESENT		(1ULL << 63)

struct pm_entry {
	uint64_t raw;
	bool present, swapped, soft_dirty, uffd_wp, exclusive, file;
	uint64_t pfn;		/* 0 unless present (and root) */
	unsigned int swap_type;	/* valid when swapped */
	uint64_t swap_offset;	/* valid when swapped */
};

/* Decode one raw /proc/<pid>/pagemap entry. */
void pm_decode(uint64_t raw, struct pm_entry *e);
/* Read n entries starting at addr; 0 on success, -errno on failure. */
int pagemap_read(const void *addr, size_t n, struct pm_entry *out);
/* Same for another process (its pid), e.g. a forked child. */
int pagemap_read_pid(pid_t pid, const void *addr, size_t n,
		     struct pm_entry *out);
/* How many of the n pages at addr are present / swapped (-1 on error). */
long pages_present(const void *addr, size_t n);
long pages_swapped(const void *addr, size_t n);
/* One-word name of an entry's state, for messages: "present" etc. */
const char *pm_state(const struct pm_entry *e);

/* ---- kpageflags -------------------------------------------------------- */

#define KPF_LOCKED		0
#define KPF_DIRTY		4
#define KPF_LRU			5
#define KPF_ACTIVE		6
#define KPF_MMAP		11
#define KPF_ANON		12
#define KPF_SWAPCACHE		13
#define KPF_SWAPBACKED		14
#define KPF_COMPOUND_HEAD	15
#define KPF_COMPOUND_TAIL	16
#define KPF_UNEVICTABLE		18
#define KPF_NOPAGE		20
#define KPF_THP			22
#define KPF_ZERO_PAGE		24

/* Flags of one PFN; false when /proc/kpageflags cannot be read. */
bool kpageflags_read(uint64_t pfn, uint64_t *flags);
/* Flags of n PFNs from pfn on, in one read. */
bool kpageflags_read_range(uint64_t pfn, size_t n, uint64_t *flags);
/*
 * /proc/kpagecount of n PFNs: how often each page is mapped (a PMD mapping
 * counts once for every page of its folio; a kernel that keeps no per-page
 * count, CONFIG_NO_PAGE_MAPCOUNT, shows an estimate from the folio's).
 */
bool kpagecount_read_range(uint64_t pfn, size_t n, uint64_t *counts);
static inline bool kpf(uint64_t flags, int bit)
{
	return flags & (1ULL << bit);
}

/* ---- THP / mTHP settings ----------------------------------------------- */

#define THP_SYSFS "/sys/kernel/mm/transparent_hugepage"

/*
 * The anonymous folio sizes (bytes) the kernel offers, ascending: those with
 * a hugepages-<size>kB/enabled file (8kB has only shmem_enabled on x86);
 * before per-size sysfs (6.8), the PMD size, steered by the top-level file.
 */
int mthp_sizes(size_t *sizes, int max);
bool mthp_size_offered(size_t size);

/*
 * The value a sysfs settings file holds: the bracketed word of a choice
 * list ("always [madvise] never" -> "madvise"), else the trimmed text.
 */
void settings_parse_value(const char *text, char *out, size_t len);

/*
 * Save every file under THP_SYSFS that a test may change (top-level
 * enabled/defrag/shmem_enabled/use_zero_page, khugepaged tunables,
 * hugepages-*\/enabled and shmem_enabled), after taking a machine-wide
 * lock (waits up to 10 min for another run). Restored by settings_restore(),
 * at exit of the saving process and when it gets SIGINT/SIGTERM/SIGHUP.
 * Returns 0, or -errno when the files cannot be read.
 */
int settings_save(void);
/*
 * Called first by the saving process's SIGINT/SIGTERM/SIGHUP handler, before
 * it restores: e.g. to kill a test still running in a child.
 */
void settings_on_signal(void (*hook)(void));
/* Write back what settings_save() read; 0 when every file reads as saved. */
int settings_restore(void);
/* Read a setting (path relative to THP_SYSFS) into out. */
int setting_get(const char *rel, char *out, size_t len);
/*
 * Write a setting; saves all settings first if not done yet, and writes
 * nothing when that fails (-errno).
 */
int setting_set(const char *rel, const char *value);
/* hugepages-<size>kB/enabled of one size. */
int mthp_set_enabled(size_t size, const char *mode);
/*
 * Only this folio size may be allocated on anonymous faults in
 * MADV_HUGEPAGE regions: size -> "madvise", every other size -> "never".
 * (The PMD size's "inherit" would otherwise follow the top-level setting.)
 * Without per-size sysfs: the top-level "enabled" -> "madvise".
 */
int mthp_only(size_t size);

/*
 * Shmem folio sizes (memfd, MAP_SHARED anonymous): a size is offered when
 * hugepages-<size>kB/shmem_enabled exists (6.11+), else the PMD size when
 * the top-level shmem_enabled does. shmem_mthp_only(size): that size
 * "advise" (MADV_HUGEPAGE mappings of a memfd get it), every other
 * "never"; the top-level shmem_enabled "advise" for the PMD size (what
 * memfds follow on kernels where per-size control is for anonymous shmem
 * only), else "never".
 */
bool shmem_size_offered(size_t size);
int shmem_mthp_only(size_t size);

/* For tests of the helpers themselves: restore from another sysfs root. */
void settings_set_root(const char *root);

/* ---- counters ------------------------------------------------------------ */

/*
 * Counter names:
 *   "thp:<stat>"     hugepages-<size>kB/stats/<stat> of the given size
 *   "vm:<name>"      /proc/vmstat
 *   "status:<Field>" /proc/self/status, in kB (RssAnon, VmSwap, ...)
 *   "khugepaged:<f>" THP_SYSFS/khugepaged/<f>
 * Returns -1 when the counter does not exist.
 */
long counter_read(const char *name, size_t size);

#define COUNTERS_MAX 24
struct counters {
	size_t size;
	int n;
	const char *name[COUNTERS_MAX];
	long before[COUNTERS_MAX];
};
/* Snapshot the NULL-terminated list of counter names. */
void counters_begin(struct counters *c, size_t size, ...);
/* Change since counters_begin(); LONG_MIN if the counter does not exist. */
long counters_delta(const struct counters *c, const char *name);
bool counters_has(const struct counters *c, const char *name);

/*
 * Is RssAnon in /proc/self/status exact? Before 6.2 each task cached its
 * RSS changes and synced them only every 64 events (SPLIT_RSS_COUNTING).
 */
bool rss_exact(void);
/* /proc/self/status field in kB, or -1. */
long status_kb(const char *field);
/* Value of a "key value" line in a file such as /proc/vmstat, or -1. */
long file_key_value(const char *path, const char *key);

/* ---- smaps --------------------------------------------------------------- */

struct smaps_sum {
	long rss, lazyfree, anon_huge, shmem_pmd, file_pmd, swap, locked;
	int vmas;
};
/* Sum of the smaps entries (kB) of every VMA overlapping [addr, addr+len). */
int smaps_range(const void *addr, size_t len, struct smaps_sum *s);
/* Parse one "Key:   123 kB" smaps line into s; for unit tests. */
void smaps_parse_line(const char *line, struct smaps_sum *s);

/* ---- reclaim drivers ----------------------------------------------------- */

/* MADV_PAGEOUT: 0 or -errno. */
int pageout(void *addr, size_t len);

/*
 * Empty this CPU's LRU batches: a folio just marked lazyfree (or faulted)
 * waits in one holding a reference, invisible to reclaim, until then.
 * MADV_COLD of a scratch page of ours drains them.
 */
void lru_drain(void);

enum lru_kind { LRU_NONE, LRU_CGROUP, LRU_CGROUP_V1, LRU_NODE };
struct lru_reclaim {
	enum lru_kind kind;
	char path[600];		/* memory.reclaim or node reclaim file */
	char cgroup[560];	/* the child cgroup made for this test */
	char parent_procs[1100];	/* cgroup.procs to move back to */
	char why[128];		/* why none is available */
	cpu_set_t cpus;		/* affinity before init */
	bool pinned;
};
/*
 * Pick the LRU reclaim driver: a child cgroup of the cgroup v2 memory
 * controller, reclaimed through memory.reclaim; else one of the cgroup v1
 * memory controller, reclaimed through memory.force_empty, or for file
 * pages alone a memory.limit_in_bytes below the usage (this process is
 * moved into it, so pages it faults from now on are charged there and
 * reclaim targets them); else the node reclaim file, which scans a small
 * cgroup's LRU only at low priority, so may take many rounds. Pins the process to the
 * CPU it runs on, so that lru_drain() (done before every round) empties
 * the batches its madvise calls filled. Returns the kind.
 */
enum lru_kind lru_reclaim_init(struct lru_reclaim *r);
void lru_reclaim_fini(struct lru_reclaim *r);
/* Ask for bytes of reclaim once; swappiness < 0: the default. */
int lru_reclaim_once(struct lru_reclaim *r, size_t bytes, int swappiness);
/*
 * Repeat LRU reclaim (bounded by rounds) until done(arg) holds.
 * Returns the round it held in (1-based), or 0 if it never did.
 */
int lru_reclaim_until(struct lru_reclaim *r, size_t bytes, int swappiness,
		      bool (*done)(void *), void *arg, int rounds);

/*
 * LRU reclaim of bytes until none of the n pages at addr is mapped
 * (present), at most rounds times: the round it held in, or 0. Asking for
 * little keeps a round short: a pass that finds nothing more to reclaim
 * is throttled (100 ms).
 */
int lru_until_unmapped(struct lru_reclaim *r, size_t bytes, int swappiness,
		       const void *addr, size_t n, int rounds);

/* Reclaim rounds (bounded), for folios meant to stay: nothing to wait for. */
void lru_reclaim_rounds(struct lru_reclaim *r, size_t bytes, int swappiness,
			int rounds);

/* ---- references and faults ------------------------------------------------ */

/*
 * Hold a reference to the page at addr in a pipe (vmsplice): an extra
 * reference reclaim sees, without dirtying or pinning the page.
 */
int hold_ref(char *addr, int p[2]);
/* Drain the pipe and close it: the reference goes. */
void drop_ref(int p[2]);
/*
 * Read addr, and with write also store back what was read: the signal
 * that raised (SIGSEGV, SIGBUS), or 0 when the access went through.
 */
int access_signal(char *addr, bool write);

/* ---- data patterns -------------------------------------------------------- */

/* Per-run seed; tests derive a new generation with pattern_seed(n). */
uint64_t pattern_seed(unsigned int generation);
/* Fill one page with the pattern of (seed, index). */
void pattern_fill(void *page, uint64_t seed, uint64_t index);
void pattern_fill_range(void *addr, size_t npages, uint64_t seed,
			uint64_t first_index);

enum page_class {
	PAGE_ORIGINAL = 1 << 0,	/* the pattern of (seed, expected index) */
	PAGE_ZERO     = 1 << 1,	/* all zero bytes */
	PAGE_OTHER    = 1 << 2,	/* the pattern of seed but another index */
	PAGE_GARBAGE  = 1 << 3,	/* anything else */
};
const char *page_class_name(enum page_class c);
/*
 * Classify one page against (seed, index). For PAGE_OTHER, *other gets
 * the index whose pattern the page holds (may be NULL).
 */
enum page_class pattern_classify(const void *page, uint64_t seed,
				 uint64_t index, uint64_t *other);
/*
 * One page, wherever it is mapped, against (seed, index): true when it is
 * one of the classes in want, else false and described in one
 * ("page 3: expected original, seen zero").
 */
bool page_verify(const void *page, uint64_t seed, uint64_t index,
		 unsigned int want, char *one, size_t len);
/*
 * Check n pages against (seed, first_index + i): page i must be one of the
 * classes in allowed[i] (or allowed[0] for all when per_page is false).
 * Returns the number of pages that are not; describes the first few in
 * msg as "page 3: expected original|zero, seen garbage".
 */
int verify_pages(const void *addr, size_t n, uint64_t seed,
		 uint64_t first_index, const unsigned int *allowed,
		 bool per_page, char *msg, size_t len);
/* All pages must be PAGE_ORIGINAL / only allowed classes. */
int verify_all(const void *addr, size_t n, uint64_t seed,
	       uint64_t first_index, unsigned int allowed, char *msg,
	       size_t len);

/*
 * Pages some of which were written after the pattern: page i with
 * written[i] must equal copy's page i byte for byte (copy: the process's
 * view right after the writes); every other page must be one of the
 * classes in others. Returns the number of pages that are not.
 */
int verify_written(const void *addr, const void *copy, size_t n,
		   const bool *written, uint64_t seed, uint64_t first_index,
		   unsigned int others, char *msg, size_t len);

/* ---- large folio builder -------------------------------------------------- */

struct large_folio {
	char *addr;		/* first byte of the folio's mapping */
	size_t size;		/* folio size in bytes */
	size_t nr;		/* pages */
	long cross;		/* -1 aligned; else index of the first page
				 * after the PMD boundary */
	char *resv;		/* the region reserved for it */
	size_t resv_len;
	uint64_t seed;		/* pattern seed the pages were filled with */
	uint64_t pfn;		/* first PFN (0 when not root) */
	bool shmem;		/* shmem_folio_build(): in the memfd fd */
	int fd;
};

/*
 * Build one anonymous large folio of the given size, filled with the
 * pattern of seed (page i holds index i). cross < 0: naturally aligned at
 * its place in the reservation; cross = k (1 <= k < nr): moved with
 * mremap(MREMAP_FIXED) so that a PMD boundary falls before page k. The
 * folio's VMA covers exactly the folio. Settings: the caller enables the
 * size (mthp_only). Returns 0, -EAGAIN when the kernel did not give a
 * large folio (try again or SKIP), other -errno on failure; why says what.
 */
int folio_build(size_t size, long cross, uint64_t seed,
		struct large_folio *f, char *why, size_t len);
/*
 * The same for a shmem folio: a memfd of the folio's size mapped MAP_SHARED
 * (and MADV_HUGEPAGE), filled through the mapping; f->fd is the memfd,
 * closed by folio_destroy(). Settings: the caller enables the size
 * (shmem_mthp_only).
 */
int shmem_folio_build(size_t size, long cross, uint64_t seed,
		      struct large_folio *f, char *why, size_t len);
void folio_destroy(struct large_folio *f);
/*
 * Move an aligned folio so that a PMD boundary falls before its page k,
 * with mremap(MREMAP_FIXED) inside its reservation. For state that must be
 * set up while the folio is in one page table: MADV_FREE, for one, splits
 * a folio it sees only partly, as it would see a PMD-crossing one.
 */
int folio_move(struct large_folio *f, long cross, char *why, size_t len);
/*
 * The PMD offsets a crossing test visits, in turn: k = cross_next(nr, 0)
 * is the first, cross_next(nr, k) the one after k, nr the end. Every
 * offset of a folio of up to 32 pages; of a larger one the offsets next to
 * its ends and its middle, and every nr/16th (where a batch's length is
 * cut by the page table, off-by-one bugs sit at the ends), unless the
 * environment sets FOLIO_ALL_OFFSETS=1.
 */
size_t cross_next(size_t nr, size_t k);

/*
 * Check that every page of f is present and maps PFN pfn0 + i, that pfn0
 * is aligned to the folio size, and (root) that kpageflags shows one
 * compound head followed by tails. 0 when it holds, else -1 and why.
 */
int folio_check(const struct large_folio *f, char *why, size_t len);

/* ---- per-page checks ------------------------------------------------------ */

/*
 * Collects what is wrong with pages: the first four problems described in
 * msg ("page 3: ...; page 7: ..."), then "and N more"; done() returns the
 * count.
 */
struct bad_pages {
	char *msg;
	size_t len, used;
	int n;
};
void bad_pages_init(struct bad_pages *b, char *msg, size_t len);
void bad_page(struct bad_pages *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int bad_pages_done(struct bad_pages *b);

/* Pages whose pagemap entry changed between before and after: how many. */
int pm_unchanged(const struct pm_entry *before, const struct pm_entry *after,
		 size_t n, char *msg, size_t len);
/*
 * Pages of [first, first + n) at addr where a write does not do what
 * want_fault says (true: must raise SIGSEGV; false: must land): how many.
 */
int writes_check(char *addr, size_t first, size_t n, bool want_fault,
		 char *msg, size_t len);
/* The same for reads (write false) or writes (true). */
int access_check(char *addr, size_t first, size_t n, bool write,
		 bool want_fault, char *msg, size_t len);

/* ---- pins and userfaultfd ------------------------------------------------- */

/*
 * Pin pages with an io_uring fixed buffer (FOLL_PIN | FOLL_LONGTERM),
 * through the raw syscalls. The ring's fd, or -errno.
 */
int pin_pages(void *addr, size_t len);
void unpin_pages(int fd);

/*
 * A userfaultfd with [addr, addr + len) registered for write-protect faults
 * (features: extra UFFD_FEATURE_* to ask for, e.g. WP_HUGETLBFS_SHMEM), all
 * of it write-protected when protect is true. The fd, or -1 with why
 * saying what the kernel lacks (a SKIP reason).
 */
int uffd_wp_open(void *addr, size_t len, uint64_t features, bool protect,
		 char *why, size_t why_len);
/* Write-protect (wp) or unprotect [addr, addr + len); 0 or -errno. */
int uffd_wp_range(int uffd, void *addr, size_t len, bool wp);
/*
 * A userfaultfd that can UFFDIO_MOVE anonymous pages into [addr, addr +
 * len) (registered for missing faults; 6.8+), or -1 with why.
 */
int uffd_move_open(void *addr, size_t len, char *why, size_t why_len);
/*
 * Move the PTEs of [src, src + len) to [dst, dst + len), which must be
 * unpopulated; a large folio is split first. 0 or -errno.
 */
int uffd_move(int uffd, void *dst, void *src, size_t len);

/*
 * A thread serving uffd-wp faults on [base, base + nr pages): counts the
 * faults per page, unprotects the page and wakes the writer; anything
 * else (another event, an address outside) counts in other.
 */
struct wp_server {
	int uffd;
	char *base;
	size_t nr;
	int *faults;		/* WP faults per page */
	volatile int stop;
	int other;
	pthread_t thread;
};
int wp_server_start(struct wp_server *s, int uffd, char *base, size_t nr);
void wp_server_stop(struct wp_server *s);
/*
 * After a write to every page: pages that did not raise exactly one
 * uffd-wp fault (none: the write landed silently), and anything else the
 * server saw, described in msg. 0 when every page faulted once.
 */
int wp_faults_check(const struct wp_server *s, char *msg, size_t len);

/* ---- kernel log ----------------------------------------------------------- */

struct kmsg_watch {
	int fd;			/* -1 when /dev/kmsg cannot be read */
	long records;		/* records read so far */
};
/* Does a kernel log message say the kernel found a bug? */
bool kmsg_is_bad(const char *msg);
/*
 * Is one /dev/kmsg record ("prio,seq,usec,flags;message\n...") a bad line
 * logged by the kernel itself? Records user space wrote (facility != 0)
 * never are. Copies the message into msg (if not NULL).
 */
bool kmsg_record_is_bad(const char *record, char *msg, size_t len);
/* Remember the current end of the kernel log. */
void kmsg_begin(struct kmsg_watch *w);
/*
 * Read what was logged since kmsg_begin(); returns how many bad lines
 * appeared and copies the first into first (if not NULL).
 */
int kmsg_check(struct kmsg_watch *w, char *first, size_t len);
void kmsg_end(struct kmsg_watch *w);

/* ---- misc ----------------------------------------------------------------- */

bool is_root(void);
/*
 * Touch the next 512 KiB of stack below the caller: later calls then grow
 * into pages already counted, and RssAnon deltas show only what a test
 * did to its memory.
 */
void stack_prefault(void);
/*
 * Read every page of the file-backed mappings there are (the program's
 * and its libraries' text and data): RssFile deltas then show only what a
 * test did to its own files.
 */
void maps_prefault(void);
/* Does pagemap report soft-dirty (CONFIG_MEM_SOFT_DIRTY)? */
bool soft_dirty_supported(void);
/* Is any swap device active (/proc/swaps has an entry)? */
bool swap_active(void);
/* mmap len bytes aligned to align (PROT_NONE reservation if prot == 0). */
void *mmap_aligned(size_t len, size_t align, int prot);

#endif /* FOLIO_UTIL_H */
