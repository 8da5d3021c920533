// SPDX-License-Identifier: GPL-2.0
/*
 * folio_util: helpers shared by every batched-unmap test and reproducer.
 * See folio_util.h for what each part is for.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <poll.h>
#include <pthread.h>
#include <linux/io_uring.h>
#include <linux/userfaultfd.h>

#include "folio_util.h"

size_t pagesize;
size_t pmdsize;
static uint64_t run_seed;

/* Read a whole (small) file into buf, NUL-terminated; bytes or -errno. */
static int read_file(const char *path, char *buf, size_t len)
{
	size_t done = 0;
	ssize_t n = 0;
	int fd;

	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while (done < len - 1 && (n = read(fd, buf + done, len - 1 - done)) > 0)
		done += n;
	if (n < 0 && !done) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	buf[done] = '\0';
	return done;
}

static int write_file(const char *path, const char *buf)
{
	size_t len = strlen(buf);
	ssize_t n;
	int fd;

	fd = open(path, O_WRONLY | O_TRUNC);
	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	if (n < 0) {
		n = -errno;
		close(fd);
		return n;
	}
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static long read_long(const char *path)
{
	char buf[64];

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	return strtol(buf, NULL, 10);
}

void folio_util_init(void)
{
	struct timespec ts;
	long v;

	pagesize = sysconf(_SC_PAGESIZE);
	v = read_long(THP_SYSFS "/hpage_pmd_size");
	/* Without THP sysfs, a PMD maps one page table of 8-byte entries. */
	pmdsize = v > 0 ? (size_t)v : pagesize * (pagesize / 8);
	clock_gettime(CLOCK_REALTIME, &ts);
	run_seed = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
		   ((uint64_t)getpid() << 16);
}

/* ---- pagemap ---------------------------------------------------------- */

void pm_decode(uint64_t raw, struct pm_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->raw = raw;
	e->present = raw & PM_PRESENT;
	e->swapped = raw & PM_SWAP;
	e->soft_dirty = raw & PM_SOFT_DIRTY;
	e->uffd_wp = raw & PM_UFFD_WP;
	e->exclusive = raw & PM_MMAP_EXCLUSIVE;
	e->file = raw & PM_FILE;
	if (e->present) {
		e->pfn = raw & PM_PFN_MASK;
	} else if (e->swapped) {
		/* bits 0-4 swap type, bits 5-54 swap offset */
		e->swap_type = raw & 0x1f;
		e->swap_offset = (raw & PM_PFN_MASK) >> 5;
	}
}

int pagemap_read_pid(pid_t pid, const void *addr, size_t n,
		     struct pm_entry *out)
{
	uint64_t raw[512];
	char path[64];
	size_t done = 0;
	int fd;

	if (pid)
		snprintf(path, sizeof(path), "/proc/%d/pagemap", (int)pid);
	else
		snprintf(path, sizeof(path), "/proc/self/pagemap");
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	while (done < n) {
		size_t chunk = n - done < 512 ? n - done : 512;
		off_t off = ((uintptr_t)addr / pagesize + done) * 8;
		ssize_t got = pread(fd, raw, chunk * 8, off);

		if (got != (ssize_t)(chunk * 8)) {
			close(fd);
			return got < 0 ? -errno : -EIO;
		}
		for (size_t i = 0; i < chunk; i++)
			pm_decode(raw[i], &out[done + i]);
		done += chunk;
	}
	close(fd);
	return 0;
}

int pagemap_read(const void *addr, size_t n, struct pm_entry *out)
{
	return pagemap_read_pid(0, addr, n, out);
}

/* In chunks on the stack: counting must not touch heap pages (RSS). */
static long count_pages(const void *addr, size_t n, bool swapped)
{
	struct pm_entry e[64];
	long count = 0;

	for (size_t done = 0; done < n; done += 64) {
		size_t chunk = n - done < 64 ? n - done : 64;

		if (pagemap_read((const char *)addr + done * pagesize, chunk, e))
			return -1;
		for (size_t i = 0; i < chunk; i++)
			count += swapped ? e[i].swapped : e[i].present;
	}
	return count;
}

long pages_present(const void *addr, size_t n)
{
	return count_pages(addr, n, false);
}

long pages_swapped(const void *addr, size_t n)
{
	return count_pages(addr, n, true);
}

const char *pm_state(const struct pm_entry *e)
{
	if (e->present)
		return "present";
	if (e->swapped)
		return e->swap_offset || e->swap_type ? "swapped" : "marker";
	return "none";
}

/* ---- kpageflags -------------------------------------------------------- */

/* n 8-byte entries of a /proc/kpage* file from pfn on; *fd caches it. */
static bool kpage_read(const char *path, int *fd, uint64_t pfn, size_t n,
		       uint64_t *out)
{
	if (*fd == -2)
		*fd = open(path, O_RDONLY);
	if (*fd < 0)
		return false;
	return pread(*fd, out, 8 * n, pfn * 8) == (ssize_t)(8 * n);
}

bool kpageflags_read_range(uint64_t pfn, size_t n, uint64_t *flags)
{
	static int fd = -2;

	return kpage_read("/proc/kpageflags", &fd, pfn, n, flags);
}

bool kpagecount_read_range(uint64_t pfn, size_t n, uint64_t *counts)
{
	static int fd = -2;

	return kpage_read("/proc/kpagecount", &fd, pfn, n, counts);
}

bool kpageflags_read(uint64_t pfn, uint64_t *flags)
{
	return kpageflags_read_range(pfn, 1, flags);
}

/* ---- THP / mTHP settings ----------------------------------------------- */

static const char *sysfs_root = THP_SYSFS;

void settings_set_root(const char *root)
{
	sysfs_root = root;
}

static int size_cmp(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

int mthp_sizes(size_t *sizes, int max)
{
	struct dirent *d;
	unsigned long kb;
	int n = 0;
	DIR *dir;

	dir = opendir(sysfs_root);
	if (!dir)
		return 0;
	while ((d = readdir(dir)) && n < max)
		if (sscanf(d->d_name, "hugepages-%lukB", &kb) == 1 &&
		    mthp_size_offered(kb * 1024))
			sizes[n++] = kb * 1024;
	closedir(dir);
	if (!n && mthp_size_offered(pmdsize))
		sizes[n++] = pmdsize;
	qsort(sizes, n, sizeof(*sizes), size_cmp);
	return n;
}

/* Kernels before 6.8 have no per-size directories: only the PMD size. */
static bool per_size_sysfs(void)
{
	bool found = false;
	struct dirent *d;
	DIR *dir;

	dir = opendir(sysfs_root);
	if (!dir)
		return false;
	while (!found && (d = readdir(dir)))
		found = !strncmp(d->d_name, "hugepages-", 10);
	closedir(dir);
	return found;
}

bool mthp_size_offered(size_t size)
{
	char path[PATH_MAX];
	struct stat st;

	if (!per_size_sysfs()) {
		snprintf(path, sizeof(path), "%s/enabled", sysfs_root);
		return size == pmdsize && stat(path, &st) == 0;
	}
	snprintf(path, sizeof(path), "%s/hugepages-%zukB/enabled", sysfs_root,
		 size / 1024);
	return stat(path, &st) == 0;
}

void settings_parse_value(const char *text, char *out, size_t len)
{
	const char *open = strchr(text, '['), *close, *start, *end;

	if (open && (close = strchr(open, ']'))) {
		start = open + 1;
		end = close;
	} else {
		start = text;
		while (*start == ' ' || *start == '\t' || *start == '\n')
			start++;
		end = start + strlen(start);
		while (end > start && (end[-1] == '\n' || end[-1] == ' ' ||
				       end[-1] == '\t'))
			end--;
	}
	if ((size_t)(end - start) >= len)
		end = start + len - 1;
	memcpy(out, start, end - start);
	out[end - start] = '\0';
}

#define SETTINGS_MAX 64
static struct saved_setting {
	char path[160];
	char value[64];
} saved[SETTINGS_MAX];
static int nr_saved;
static pid_t saver_pid;
static void (*signal_hook)(void);

void settings_on_signal(void (*hook)(void))
{
	signal_hook = hook;
}

static void save_one(const char *path)
{
	char buf[256];
	struct stat st;

	if (nr_saved >= SETTINGS_MAX || stat(path, &st) || !S_ISREG(st.st_mode) ||
	    !(st.st_mode & S_IWUSR) || read_file(path, buf, sizeof(buf)) < 0)
		return;
	snprintf(saved[nr_saved].path, sizeof(saved[0].path), "%.159s", path);
	settings_parse_value(buf, saved[nr_saved].value,
			     sizeof(saved[0].value));
	nr_saved++;
}

/* Save the writable files of dir, and of its subdirectories but "stats". */
static void save_dir(const char *dir, int depth)
{
	char path[PATH_MAX];
	struct dirent *d;
	struct stat st;
	DIR *dh;

	dh = opendir(dir);
	if (!dh)
		return;
	while ((d = readdir(dh))) {
		if (d->d_name[0] == '.' || !strcmp(d->d_name, "stats"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
		if (stat(path, &st))
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (depth == 0)
				save_dir(path, 1);
		} else {
			save_one(path);
		}
	}
	closedir(dh);
}

static void lru_remove_stale(void);

static void restore_on_exit(void)
{
	if (getpid() == saver_pid) {
		settings_restore();
		lru_remove_stale();
	}
}

static void restore_on_signal(int sig)
{
	if (getpid() == saver_pid) {
		if (signal_hook)
			signal_hook();
		settings_restore();
		lru_remove_stale();
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/*
 * Two runs on one machine would each save what the other changed and
 * restore it: one run at a time, machine-wide. run_vmtests.sh takes the
 * same lock for all its programs and says so in FOLIO_UTIL_LOCK_HELD.
 */
static int settings_lock(void)
{
	const char *path = access("/run/lock", W_OK) ? "/tmp/folio_util.lock" :
			   "/run/lock/folio_util.lock";
	int fd;

	if (getenv("FOLIO_UTIL_LOCK_HELD"))
		return 0;
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB); i++) {
		if (i == 0)
			fprintf(stderr, "# waiting for another run to finish (%s)\n",
				path);
		if (i >= 6000) {
			close(fd);
			return -EBUSY;
		}
		usleep(100 * 1000);
	}
	return 0;	/* held until this process exits */
}

int settings_save(void)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	int ret;

	if (saver_pid)
		return 0;
	ret = settings_lock();
	if (ret)
		return ret;
	nr_saved = 0;
	save_dir(sysfs_root, 0);
	if (!nr_saved)
		return -ENOENT;
	saver_pid = getpid();
	atexit(restore_on_exit);
	for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++) {
		struct sigaction sa = { .sa_handler = restore_on_signal };

		sigaction(sigs[i], &sa, NULL);
	}
	return 0;
}

int settings_restore(void)
{
	char buf[256], now[64];
	int bad = 0;

	/*
	 * Two passes: a per-size "inherit" or the top-level file may only be
	 * accepted once the other is back, so write all, then check all.
	 */
	for (int pass = 0; pass < 2; pass++)
		for (int i = 0; i < nr_saved; i++)
			write_file(saved[i].path, saved[i].value);
	for (int i = 0; i < nr_saved; i++) {
		if (read_file(saved[i].path, buf, sizeof(buf)) < 0) {
			fprintf(stderr, "# settings: %s cannot be read\n",
				saved[i].path);
			bad++;
			continue;
		}
		settings_parse_value(buf, now, sizeof(now));
		if (strcmp(now, saved[i].value)) {
			fprintf(stderr, "# settings: %s reads '%s', saved '%s'\n",
				saved[i].path, now, saved[i].value);
			bad++;
		}
	}
	return bad ? -EIO : 0;
}

int setting_get(const char *rel, char *out, size_t len)
{
	char path[PATH_MAX], buf[256];
	int ret;

	snprintf(path, sizeof(path), "%s/%s", sysfs_root, rel);
	ret = read_file(path, buf, sizeof(buf));
	if (ret < 0)
		return ret;
	settings_parse_value(buf, out, len);
	return 0;
}

int setting_set(const char *rel, const char *value)
{
	char path[PATH_MAX];
	int ret;

	/*
	 * Nothing that was not saved first: when another run held the lock
	 * past the wait, writing anyway would leave the change behind.
	 */
	if (!saver_pid && (ret = settings_save()))
		return ret;
	snprintf(path, sizeof(path), "%s/%s", sysfs_root, rel);
	return write_file(path, value);
}

int mthp_set_enabled(size_t size, const char *mode)
{
	char rel[64];

	snprintf(rel, sizeof(rel), "hugepages-%zukB/enabled", size / 1024);
	return setting_set(rel, mode);
}

int mthp_only(size_t size)
{
	size_t sizes[32];
	int n = mthp_sizes(sizes, 32), ret;

	if (!per_size_sysfs())
		return size == pmdsize ? setting_set("enabled", "madvise") : -ENOENT;

	for (int i = 0; i < n; i++) {
		ret = mthp_set_enabled(sizes[i],
				       sizes[i] == size ? "madvise" : "never");
		if (ret)
			return ret;
	}
	return 0;
}

static bool per_size_shmem(void)
{
	char path[PATH_MAX];
	struct stat st;

	snprintf(path, sizeof(path), "%s/hugepages-%zukB/shmem_enabled",
		 sysfs_root, pmdsize / 1024);
	return stat(path, &st) == 0;
}

bool shmem_size_offered(size_t size)
{
	char path[PATH_MAX];
	struct stat st;

	if (!per_size_shmem()) {
		snprintf(path, sizeof(path), "%s/shmem_enabled", sysfs_root);
		return size == pmdsize && stat(path, &st) == 0;
	}
	snprintf(path, sizeof(path), "%s/hugepages-%zukB/shmem_enabled",
		 sysfs_root, size / 1024);
	return stat(path, &st) == 0;
}

int shmem_mthp_only(size_t size)
{
	char rel[64];
	int ret;

	ret = setting_set("shmem_enabled", size == pmdsize ? "advise" : "never");
	if (ret || !per_size_shmem())
		return ret ? ret : size == pmdsize ? 0 : -ENOENT;
	for (size_t s = 2 * pagesize; s <= pmdsize; s *= 2) {
		snprintf(rel, sizeof(rel), "hugepages-%zukB/shmem_enabled",
			 s / 1024);
		if (!shmem_size_offered(s))
			continue;
		ret = setting_set(rel, s == size ? "advise" : "never");
		if (ret)
			return ret;
	}
	return 0;
}

/* ---- counters ------------------------------------------------------------ */

/*
 * Read into a stack buffer, not through stdio: an RSS delta must not see
 * the heap pages a FILE buffer would touch.
 */
long file_key_value(const char *path, const char *key)
{
	size_t klen = strlen(key);
	char buf[32768], *line;

	if (read_file(path, buf, sizeof(buf)) <= 0)
		return -1;
	for (line = buf; line && *line; line = strchr(line, '\n'),
	     line = line ? line + 1 : NULL) {
		if (!strncmp(line, key, klen) &&
		    (line[klen] == ' ' || line[klen] == ':' || line[klen] == '\t'))
			return strtol(line + klen + 1 + strspn(line + klen + 1, " \t:"),
				      NULL, 10);
	}
	return -1;
}

bool rss_exact(void)
{
	struct utsname u;
	int major, minor;

	if (uname(&u) || sscanf(u.release, "%d.%d", &major, &minor) != 2)
		return true;
	return major > 6 || (major == 6 && minor >= 2);
}

long status_kb(const char *field)
{
	return file_key_value("/proc/self/status", field);
}

long counter_read(const char *name, size_t size)
{
	char path[PATH_MAX];

	if (!strncmp(name, "thp:", 4)) {
		snprintf(path, sizeof(path), "%s/hugepages-%zukB/stats/%s",
			 sysfs_root, size / 1024, name + 4);
		return read_long(path);
	}
	if (!strncmp(name, "vm:", 3))
		return file_key_value("/proc/vmstat", name + 3);
	if (!strncmp(name, "status:", 7))
		return status_kb(name + 7);
	if (!strncmp(name, "khugepaged:", 11)) {
		snprintf(path, sizeof(path), "%s/khugepaged/%s", sysfs_root,
			 name + 11);
		return read_long(path);
	}
	return -1;
}

void counters_begin(struct counters *c, size_t size, ...)
{
	const char *name;
	va_list ap;

	c->size = size;
	c->n = 0;
	va_start(ap, size);
	while ((name = va_arg(ap, const char *)) && c->n < COUNTERS_MAX) {
		c->name[c->n] = name;
		c->before[c->n] = counter_read(name, size);
		c->n++;
	}
	va_end(ap);
}

static int counter_index(const struct counters *c, const char *name)
{
	for (int i = 0; i < c->n; i++)
		if (!strcmp(c->name[i], name))
			return i;
	return -1;
}

bool counters_has(const struct counters *c, const char *name)
{
	int i = counter_index(c, name);

	return i >= 0 && c->before[i] >= 0;
}

long counters_delta(const struct counters *c, const char *name)
{
	int i = counter_index(c, name);
	long now;

	if (i < 0 || c->before[i] < 0)
		return LONG_MIN;
	now = counter_read(name, c->size);
	return now < 0 ? LONG_MIN : now - c->before[i];
}

/* ---- smaps --------------------------------------------------------------- */

void smaps_parse_line(const char *line, struct smaps_sum *s)
{
	static const struct {
		const char *key;
		size_t off;
	} keys[] = {
		{ "Rss:", offsetof(struct smaps_sum, rss) },
		{ "LazyFree:", offsetof(struct smaps_sum, lazyfree) },
		{ "AnonHugePages:", offsetof(struct smaps_sum, anon_huge) },
		{ "ShmemPmdMapped:", offsetof(struct smaps_sum, shmem_pmd) },
		{ "FilePmdMapped:", offsetof(struct smaps_sum, file_pmd) },
		{ "Swap:", offsetof(struct smaps_sum, swap) },
		{ "Locked:", offsetof(struct smaps_sum, locked) },
	};

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		size_t klen = strlen(keys[i].key);

		if (!strncmp(line, keys[i].key, klen)) {
			*(long *)((char *)s + keys[i].off) +=
				strtol(line + klen, NULL, 10);
			return;
		}
	}
}

int smaps_range(const void *addr, size_t len, struct smaps_sum *s)
{
	uintptr_t lo = (uintptr_t)addr, hi = lo + len;
	unsigned long start, end;
	bool in = false;
	char line[512];
	FILE *f;

	memset(s, 0, sizeof(*s));
	f = fopen("/proc/self/smaps", "r");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* A VMA header starts with "start-end " in hex. */
		if (sscanf(line, "%lx-%lx ", &start, &end) == 2 &&
		    strchr(line, '-') < strchr(line, ' ')) {
			in = start < hi && end > lo;
			s->vmas += in;
			continue;
		}
		if (in)
			smaps_parse_line(line, s);
	}
	fclose(f);
	return 0;
}

/* ---- reclaim drivers ----------------------------------------------------- */

int pageout(void *addr, size_t len)
{
	return madvise(addr, len, MADV_PAGEOUT) ? -errno : 0;
}

/* Is word one of the sep-separated words of text? */
static bool has_word_sep(const char *text, const char *word, char sep)
{
	size_t n = strlen(word);

	for (const char *p = text; (p = strstr(p, word)); p += n)
		if ((p == text || p[-1] == sep) &&
		    (p[n] == '\0' || p[n] == sep || p[n] == '\n'))
			return true;
	return false;
}

static bool has_word(const char *text, const char *word)
{
	return has_word_sep(text, word, ' ');
}

/* Where a file system of this type (with this mount option) is mounted. */
static bool mount_of(const char *fstype, const char *option, char *mnt,
		     size_t len)
{
	char line[1024], dev[256], dir[512], type[64], opts[512];
	bool found = false;
	FILE *f;

	f = fopen("/proc/self/mounts", "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		if (sscanf(line, "%255s %511s %63s %511s", dev, dir, type, opts) == 4 &&
		    !strcmp(type, fstype) &&
		    (!option || has_word_sep(opts, option, ','))) {
			snprintf(mnt, len, "%s", dir);
			found = true;
		}
	fclose(f);
	return found;
}

static bool cgroup2_mount(char *mnt, size_t len)
{
	return mount_of("cgroup2", NULL, mnt, len);
}

static bool cgroup_v1_memory(char *mnt, size_t len)
{
	return mount_of("cgroup", "memory", mnt, len);
}

/*
 * Enter a new cgroup (named after our pid) made under parent, in the
 * hierarchy at mnt where we are in cgroup self now.
 */
static bool cgroup_enter(struct lru_reclaim *r, const char *mnt,
			 const char *self, const char *parent)
{
	char path[1200], buf[32];

	snprintf(r->parent_procs, sizeof(r->parent_procs), "%s%s/cgroup.procs",
		 mnt, strcmp(self, "/") ? self : "");
	snprintf(r->cgroup, sizeof(r->cgroup), "%s%s/folio_util.%d", mnt,
		 strcmp(parent, "/") ? parent : "", (int)getpid());
	if (mkdir(r->cgroup, 0755) && errno != EEXIST) {
		snprintf(r->why, sizeof(r->why), "mkdir %.80s: %s", r->cgroup,
			 strerror(errno));
		return false;
	}
	snprintf(path, sizeof(path), "%s/cgroup.procs", r->cgroup);
	snprintf(buf, sizeof(buf), "%d", (int)getpid());
	if (write_file(path, buf)) {
		snprintf(r->why, sizeof(r->why), "cannot enter %.100s", r->cgroup);
		rmdir(r->cgroup);
		return false;
	}
	return true;
}

/* Our cgroup in a hierarchy: the /proc/self/cgroup line for it. */
static void cgroup_self(const char *prefix, char *out, size_t len)
{
	char buf[512];
	FILE *f;

	snprintf(out, len, "/");
	f = fopen("/proc/self/cgroup", "r");
	while (f && fgets(buf, sizeof(buf), f)) {
		char *path = strchr(buf, ':');

		path = path ? strchr(path + 1, ':') : NULL;
		if (!path || strncmp(strchr(buf, ':') + 1, prefix, strlen(prefix)))
			continue;
		buf[strcspn(buf, "\n")] = '\0';
		snprintf(out, len, "%s", path + 1);
	}
	if (f)
		fclose(f);
}

static bool lru_try_cgroup(struct lru_reclaim *r)
{
	char mnt[512], path[600], buf[512], self[512];

	if (!cgroup2_mount(mnt, sizeof(mnt))) {
		snprintf(r->why, sizeof(r->why), "no cgroup2 mount");
		return false;
	}
	snprintf(path, sizeof(path), "%s/cgroup.subtree_control", mnt);
	if (read_file(path, buf, sizeof(buf)) < 0 || !has_word(buf, "memory")) {
		snprintf(r->why, sizeof(r->why),
			 "cgroup2 root does not delegate the memory controller");
		return false;
	}
	cgroup_self(":", self, sizeof(self));
	/* Under the root: v2 lets no process live beside child cgroups. */
	if (!cgroup_enter(r, mnt, self, "/"))
		return false;
	snprintf(r->path, sizeof(r->path), "%s/memory.reclaim", r->cgroup);
	return true;
}

static bool lru_try_cgroup_v1(struct lru_reclaim *r)
{
	char mnt[512], self[512];

	if (!cgroup_v1_memory(mnt, sizeof(mnt)))
		return false;
	cgroup_self("memory:", self, sizeof(self));
	/* Under our own: whatever limits it has still hold. */
	if (!cgroup_enter(r, mnt, self, self))
		return false;
	snprintf(r->path, sizeof(r->path), "%s/memory.force_empty", r->cgroup);
	return true;
}

static bool lru_try_node(struct lru_reclaim *r)
{
	/* The node the test's memory comes from; tests here use node 0. */
	snprintf(r->path, sizeof(r->path),
		 "/sys/devices/system/node/node0/reclaim");
	if (access(r->path, W_OK)) {
		snprintf(r->why + strlen(r->why), sizeof(r->why) - strlen(r->why),
			 "%sno writable node reclaim file", r->why[0] ? "; " : "");
		return false;
	}
	return true;
}

void lru_drain(void)
{
	static char *scratch;

	if (!scratch)
		scratch = mmap(NULL, pagesize, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (scratch != MAP_FAILED)
		madvise(scratch, pagesize, MADV_COLD);
}

enum lru_kind lru_reclaim_init(struct lru_reclaim *r)
{
	cpu_set_t one;
	int cpu;

	memset(r, 0, sizeof(*r));
	cpu = sched_getcpu();
	if (cpu >= 0 && !sched_getaffinity(0, sizeof(r->cpus), &r->cpus)) {
		CPU_ZERO(&one);
		CPU_SET(cpu, &one);
		r->pinned = !sched_setaffinity(0, sizeof(one), &one);
	}
	if (lru_try_cgroup(r))
		r->kind = LRU_CGROUP;
	else if (lru_try_cgroup_v1(r))
		r->kind = LRU_CGROUP_V1;
	else if (lru_try_node(r))
		r->kind = LRU_NODE;
	else
		r->kind = LRU_NONE;
	return r->kind;
}

/*
 * rmdir the folio_util.<pid> cgroups in dir; one that still holds a live
 * process (another run's) stays. Returns how many are left.
 */
static int remove_stale_in(const char *dir)
{
	char path[1200];
	struct dirent *d;
	int left = 0;
	DIR *dh;

	dh = opendir(dir);
	if (!dh)
		return 0;
	while ((d = readdir(dh)))
		if (!strncmp(d->d_name, "folio_util.", 11)) {
			snprintf(path, sizeof(path), "%s/%s", dir, d->d_name);
			left += rmdir(path) != 0;
		}
	closedir(dh);
	return left;
}

/*
 * A test killed before its teardown leaves its cgroup behind: the process
 * that saved the settings removes such cgroups when it exits, giving a
 * killed test a moment to leave its cgroup.
 */
static void lru_remove_stale(void)
{
	char mnt[512], self[512], dir[1100] = "", dir2[512] = "";
	struct timespec ts = { 0, 5 * 1000 * 1000 };

	if (!cgroup2_mount(dir2, sizeof(dir2)))
		dir2[0] = '\0';
	if (cgroup_v1_memory(mnt, sizeof(mnt))) {
		cgroup_self("memory:", self, sizeof(self));
		snprintf(dir, sizeof(dir), "%s%s", mnt, strcmp(self, "/") ? self : "");
	}
	for (int i = 0; i < 40; i++) {
		int left = 0;

		if (dir2[0])
			left += remove_stale_in(dir2);
		if (dir[0])
			left += remove_stale_in(dir);
		if (!left)
			break;
		nanosleep(&ts, NULL);
	}
}

void lru_reclaim_fini(struct lru_reclaim *r)
{
	char buf[32];

	if (r->kind == LRU_CGROUP || r->kind == LRU_CGROUP_V1) {
		snprintf(buf, sizeof(buf), "%d", (int)getpid());
		write_file(r->parent_procs, buf);
		rmdir(r->cgroup);
	}
	if (r->pinned)
		sched_setaffinity(0, sizeof(r->cpus), &r->cpus);
	r->pinned = false;
	r->kind = LRU_NONE;
}

/*
 * cgroup v1 reclaim of bytes, file pages only (swappiness 0): a limit
 * below the usage reclaims down to it and gives up at the first pass
 * without progress (EBUSY), where force_empty retries, throttled, for the
 * pages it cannot reclaim. A child outside the cgroup sets and lifts the
 * limit: while it holds, any charge to the cgroup invokes its OOM killer.
 * Only without swapping: a page of ours swapped out is charged back to the
 * cgroup when any process, that child too, faults it in.
 * -ENOENT when the files are not there.
 */
static int v1_limit_reclaim(struct lru_reclaim *r, size_t bytes)
{
	char path[700], usage_path[700], buf[64];
	int status, fd, ret;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/memory.limit_in_bytes", r->cgroup);
	if (access(path, W_OK))
		return -ENOENT;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (!pid) {
		unsigned long long usage;

		snprintf(buf, sizeof(buf), "%d", getpid());
		if (write_file(r->parent_procs, buf))
			_exit(3);
		snprintf(usage_path, sizeof(usage_path), "%s/memory.usage_in_bytes",
			 r->cgroup);
		if (read_file(usage_path, buf, sizeof(buf)) <= 0)
			_exit(4);
		usage = strtoull(buf, NULL, 10);
		fd = open(path, O_WRONLY);
		if (fd < 0)
			_exit(5);
		snprintf(buf, sizeof(buf), "%llu", usage > bytes ? usage - bytes : 0);
		ret = pwrite(fd, buf, strlen(buf), 0) < 0 ? errno : 0;
		if (pwrite(fd, "-1", 2, 0) != 2)
			_exit(6);
		/* EBUSY: not all of it could be reclaimed; that is an answer. */
		_exit(ret && ret != EBUSY && ret != EAGAIN ? 7 : 0);
	}
	if (waitpid(pid, &status, 0) != pid)
		return -errno;
	return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -EIO;
}

int lru_reclaim_once(struct lru_reclaim *r, size_t bytes, int swappiness)
{
	char buf[64];
	int ret;

	if (r->kind == LRU_NONE)
		return -ENODEV;
	lru_drain();
	if (r->kind == LRU_CGROUP_V1) {
		char path[700];

		/* Our own cgroup's swappiness; it goes with the cgroup. */
		snprintf(path, sizeof(path), "%s/memory.swappiness", r->cgroup);
		snprintf(buf, sizeof(buf), "%d", swappiness < 0 ? 60 :
			 swappiness > 100 ? 100 : swappiness);
		write_file(path, buf);
		if (swappiness == 0) {
			ret = v1_limit_reclaim(r, bytes);
			if (ret != -ENOENT)
				return ret;
		}
		ret = write_file(r->path, "0");
		/* EBUSY: not all of it could be reclaimed; that is an answer. */
		return ret == -EBUSY || ret == -EAGAIN ? 0 : ret;
	}
	if (swappiness >= 0) {
		snprintf(buf, sizeof(buf), "%zu swappiness=%d", bytes, swappiness);
		ret = write_file(r->path, buf);
		if (ret != -EINVAL)
			return ret == -EAGAIN ? 0 : ret;
		/* Kernels before the swappiness argument: plain amount. */
	}
	snprintf(buf, sizeof(buf), "%zu", bytes);
	ret = write_file(r->path, buf);
	/* EAGAIN: less than asked for was reclaimed; that is an answer. */
	return ret == -EAGAIN ? 0 : ret;
}

int lru_reclaim_until(struct lru_reclaim *r, size_t bytes, int swappiness,
		      bool (*done)(void *), void *arg, int rounds)
{
	for (int i = 1; i <= rounds; i++) {
		if (lru_reclaim_once(r, bytes, swappiness) < 0)
			return 0;
		if (done(arg))
			return i;
		/* Referenced folios are rotated; give the next pass a chance. */
		usleep(1000);
	}
	return 0;
}

struct unmapped_arg {
	const void *addr;
	size_t n;
};

static bool all_unmapped(void *arg)
{
	struct unmapped_arg *u = arg;

	return pages_present(u->addr, u->n) == 0;
}

int lru_until_unmapped(struct lru_reclaim *r, size_t bytes, int swappiness,
		       const void *addr, size_t n, int rounds)
{
	struct unmapped_arg u = { addr, n };

	return lru_reclaim_until(r, bytes, swappiness, all_unmapped, &u, rounds);
}

static bool never(void *arg)
{
	return false;
}

void lru_reclaim_rounds(struct lru_reclaim *r, size_t bytes, int swappiness,
			int rounds)
{
	lru_reclaim_until(r, bytes, swappiness, never, NULL, rounds);
}

/* ---- references and faults ------------------------------------------------ */

int hold_ref(char *addr, int p[2])
{
	struct iovec iov = { addr, pagesize };

	if (pipe(p))
		return -errno;
	return vmsplice(p[1], &iov, 1, 0) == (ssize_t)pagesize ? 0 : -errno;
}

void drop_ref(int p[2])
{
	char *buf = malloc(pagesize);

	if (buf && read(p[0], buf, pagesize) < 0)
		buf[0] = 0;
	free(buf);
	close(p[0]);
	close(p[1]);
}

static sigjmp_buf access_jmp;
static volatile sig_atomic_t access_sig;

static void on_access_signal(int sig)
{
	access_sig = sig;
	siglongjmp(access_jmp, 1);
}

int access_signal(char *addr, bool write)
{
	struct sigaction sa = { .sa_handler = on_access_signal }, segv, bus;
	volatile int sig = 0;

	sigaction(SIGSEGV, &sa, &segv);
	sigaction(SIGBUS, &sa, &bus);
	if (sigsetjmp(access_jmp, 1) == 0) {
		char v = *(volatile char *)addr;

		if (write)
			*(volatile char *)addr = v;
	} else {
		sig = access_sig;
	}
	sigaction(SIGSEGV, &segv, NULL);
	sigaction(SIGBUS, &bus, NULL);
	return sig;
}

/* ---- data patterns -------------------------------------------------------- */

#define PATTERN_MAGIC 0x464f4c494f504154ULL	/* "FOLIOPAT" */

static uint64_t mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

uint64_t pattern_seed(unsigned int generation)
{
	return mix64(run_seed + generation) | 1;
}

static uint64_t body_word(uint64_t seed, uint64_t index, size_t j)
{
	return mix64(seed ^ mix64(index) ^ (j * 0x100000001b3ULL));
}

void pattern_fill(void *page, uint64_t seed, uint64_t index)
{
	uint64_t *w = page;
	size_t words = pagesize / 8;

	w[0] = PATTERN_MAGIC;
	w[1] = seed;
	w[2] = index;
	for (size_t j = 3; j < words; j++)
		w[j] = body_word(seed, index, j);
}

void pattern_fill_range(void *addr, size_t npages, uint64_t seed,
			uint64_t first_index)
{
	for (size_t i = 0; i < npages; i++)
		pattern_fill((char *)addr + i * pagesize, seed, first_index + i);
}

const char *page_class_name(enum page_class c)
{
	switch (c) {
	case PAGE_ORIGINAL: return "original";
	case PAGE_ZERO: return "zero";
	case PAGE_OTHER: return "another page's data";
	case PAGE_GARBAGE: return "garbage";
	}
	return "?";
}

static bool page_is_zero(const uint64_t *w, size_t words)
{
	for (size_t j = 0; j < words; j++)
		if (w[j])
			return false;
	return true;
}

enum page_class pattern_classify(const void *page, uint64_t seed,
				 uint64_t index, uint64_t *other)
{
	const uint64_t *w = page;
	size_t words = pagesize / 8;

	if (page_is_zero(w, words))
		return PAGE_ZERO;
	if (w[0] != PATTERN_MAGIC || w[1] != seed)
		return PAGE_GARBAGE;
	for (size_t j = 3; j < words; j++)
		if (w[j] != body_word(seed, w[2], j))
			return PAGE_GARBAGE;
	if (w[2] == index)
		return PAGE_ORIGINAL;
	if (other)
		*other = w[2];
	return PAGE_OTHER;
}

static void class_set_name(unsigned int set, char *out, size_t len)
{
	size_t used = 0;

	out[0] = '\0';
	for (unsigned int c = PAGE_ORIGINAL; c <= PAGE_GARBAGE; c <<= 1)
		if (set & c)
			used += snprintf(out + used, used < len ? len - used : 0,
					 "%s%s", used ? "|" : "",
					 page_class_name(c));
}

/* Is page i one of the classes in want? If not, describe it in one. */
static bool page_ok(const char *page, uint64_t seed, uint64_t first_index,
		    size_t i, unsigned int want, char *one, size_t len)
{
	enum page_class c;
	uint64_t other = 0;
	char wanted[96];

	c = pattern_classify(page, seed, first_index + i, &other);
	if (c & want)
		return true;
	class_set_name(want, wanted, sizeof(wanted));
	if (c == PAGE_OTHER)
		snprintf(one, len, "page %zu: expected %s, seen page %llu's data",
			 i, wanted, (unsigned long long)(other - first_index));
	else
		snprintf(one, len, "page %zu: expected %s, seen %s", i, wanted,
			 page_class_name(c));
	return false;
}

/* Collects what is wrong: the first four described, then a count. */
struct mismatches {
	char *msg;
	size_t len, used;
	int bad;
};

static void mismatch(struct mismatches *m, const char *one)
{
	if (++m->bad <= 4)
		m->used += snprintf(m->msg + m->used,
				    m->used < m->len ? m->len - m->used : 0,
				    "%s%s", m->used ? "; " : "", one);
}

static int mismatches_done(struct mismatches *m)
{
	if (m->bad > 4)
		snprintf(m->msg + m->used, m->used < m->len ? m->len - m->used : 0,
			 "; and %d more", m->bad - 4);
	return m->bad;
}

bool page_verify(const void *page, uint64_t seed, uint64_t index,
		 unsigned int want, char *one, size_t len)
{
	return page_ok(page, seed, 0, index, want, one, len);
}

int verify_pages(const void *addr, size_t n, uint64_t seed,
		 uint64_t first_index, const unsigned int *allowed,
		 bool per_page, char *msg, size_t len)
{
	struct mismatches m = { .msg = msg, .len = len };
	char one[160];

	if (len)
		msg[0] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!page_ok((const char *)addr + i * pagesize, seed, first_index,
			     i, per_page ? allowed[i] : allowed[0], one,
			     sizeof(one)))
			mismatch(&m, one);
	return mismatches_done(&m);
}

int verify_all(const void *addr, size_t n, uint64_t seed,
	       uint64_t first_index, unsigned int allowed, char *msg,
	       size_t len)
{
	return verify_pages(addr, n, seed, first_index, &allowed, false, msg,
			    len);
}

int verify_written(const void *addr, const void *copy, size_t n,
		   const bool *written, uint64_t seed, uint64_t first_index,
		   unsigned int others, char *msg, size_t len)
{
	struct mismatches m = { .msg = msg, .len = len };
	char one[160];

	if (len)
		msg[0] = '\0';
	for (size_t i = 0; i < n; i++) {
		const char *page = (const char *)addr + i * pagesize;
		const char *want = (const char *)copy + i * pagesize;
		size_t off = 0;

		if (!written[i]) {
			if (!page_ok(page, seed, first_index, i, others, one,
				     sizeof(one)))
				mismatch(&m, one);
			continue;
		}
		if (!memcmp(page, want, pagesize))
			continue;
		while (page[off] == want[off])
			off++;
		snprintf(one, sizeof(one),
			 "page %zu (written): differs at byte %zu, seen %s", i,
			 off, page_class_name(pattern_classify(page, seed,
						first_index + i, NULL)));
		mismatch(&m, one);
	}
	return mismatches_done(&m);
}

/* ---- large folio builder -------------------------------------------------- */

void *mmap_aligned(size_t len, size_t align, int prot)
{
	char *p, *a;

	p = mmap(NULL, len + align, prot, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return MAP_FAILED;
	a = (char *)(((uintptr_t)p + align - 1) & ~(uintptr_t)(align - 1));
	if (a > p)
		munmap(p, a - p);
	if (a + len < p + len + align)
		munmap(a + len, p + len + align - (a + len));
	return a;
}

static bool cross_visited(size_t nr, size_t k)
{
	size_t mid = nr / 2;

	return k <= 3 || k >= nr - 3 || (k >= mid - 1 && k <= mid + 1) ||
	       k % (nr / 16) == 0;
}

size_t cross_next(size_t nr, size_t k)
{
	const char *all = getenv("FOLIO_ALL_OFFSETS");

	for (k++; k < nr; k++)
		if (nr <= 32 || (all && !strcmp(all, "1")) || cross_visited(nr, k))
			break;
	return k;
}

int folio_check(const struct large_folio *f, char *why, size_t len)
{
	struct pm_entry *e = calloc(f->nr, sizeof(*e));
	uint64_t flags, pfn0, *tails = NULL;
	int ret = -1;

	if (!e || pagemap_read(f->addr, f->nr, e)) {
		snprintf(why, len, "cannot read pagemap");
		goto out;
	}
	for (size_t i = 0; i < f->nr; i++)
		if (!e[i].present) {
			snprintf(why, len, "page %zu not present (%s)", i,
				 pm_state(&e[i]));
			goto out;
		}
	pfn0 = e[0].pfn;
	if (!pfn0) {
		snprintf(why, len, "PFNs hidden (not root)");
		goto out;
	}
	if (pfn0 % f->nr) {
		snprintf(why, len, "first PFN %#llx not aligned to %zu pages",
			 (unsigned long long)pfn0, f->nr);
		goto out;
	}
	for (size_t i = 1; i < f->nr; i++)
		if (e[i].pfn != pfn0 + i) {
			snprintf(why, len, "page %zu maps PFN %#llx, expected %#llx",
				 i, (unsigned long long)e[i].pfn,
				 (unsigned long long)(pfn0 + i));
			goto out;
		}
	if (kpageflags_read(pfn0, &flags)) {
		if (!kpf(flags, KPF_COMPOUND_HEAD) || !kpf(flags, KPF_THP)) {
			snprintf(why, len, "PFN %#llx: kpageflags %#llx, expected a THP compound head",
				 (unsigned long long)pfn0,
				 (unsigned long long)flags);
			goto out;
		}
		/* the tails, and the PFN after them: a head or a small page */
		tails = calloc(f->nr, sizeof(*tails));
		if (!tails || !kpageflags_read_range(pfn0 + 1, f->nr, tails)) {
			snprintf(why, len, "cannot read kpageflags");
			goto out;
		}
		for (size_t i = 1; i < f->nr; i++)
			if (!kpf(tails[i - 1], KPF_COMPOUND_TAIL)) {
				snprintf(why, len, "PFN %#llx: kpageflags %#llx, expected a compound tail",
					 (unsigned long long)(pfn0 + i),
					 (unsigned long long)tails[i - 1]);
				goto out;
			}
		/* The folio must end where the size says, not be larger. */
		if (kpf(tails[f->nr - 1], KPF_COMPOUND_TAIL)) {
			snprintf(why, len, "PFN %#llx after the folio is a tail: folio larger than %zu kB",
				 (unsigned long long)(pfn0 + f->nr), f->size / 1024);
			goto out;
		}
	}
	ret = 0;
out:
	free(tails);
	free(e);
	return ret;
}

/*
 * Fault one folio at addr (a fresh mapping of exactly size bytes):
 * anonymous, or of the memfd fd (emptied first, so that a retry does not
 * find the last attempt's small folios in the page cache).
 */
static int fault_folio(char *addr, size_t size, uint64_t seed, int fd)
{
	int flags = fd < 0 ? MAP_PRIVATE | MAP_ANONYMOUS : MAP_SHARED;

	if (fd >= 0 && (ftruncate(fd, 0) || ftruncate(fd, size)))
		return -errno;
	if (mmap(addr, size, PROT_READ | PROT_WRITE, flags | MAP_FIXED, fd,
		 0) == MAP_FAILED)
		return -errno;
	if (madvise(addr, size, MADV_HUGEPAGE))
		return -errno;
	pattern_fill_range(addr, size / pagesize, seed, 0);
	return 0;
}

static int build(size_t size, long cross, uint64_t seed, bool shmem,
		 struct large_folio *f, char *why, size_t len)
{
	size_t nr = size / pagesize;
	struct pm_entry e;
	char *src;
	int ret = 0;

	memset(f, 0, sizeof(*f));
	if (size < 2 * pagesize || size > pmdsize || (size & (size - 1)) ||
	    cross == 0 || cross >= (long)nr) {
		snprintf(why, len, "bad folio request: %zu bytes, cross %ld",
			 size, cross);
		return -EINVAL;
	}
	if (shmem) {
		f->fd = memfd_create("folio_util", MFD_CLOEXEC);
		if (f->fd < 0) {
			snprintf(why, len, "memfd_create: %s", strerror(errno));
			return -errno;
		}
		f->shmem = true;
	}
	/*
	 * Reservation, PMD-aligned: [0, PMD) guard, [PMD, 2 PMD) where the
	 * folio faults in, the PMD boundary at 3 PMD that a crossing folio
	 * straddles, then room for its tail.
	 */
	f->resv_len = 4 * pmdsize;
	f->resv = mmap_aligned(f->resv_len, pmdsize, PROT_NONE);
	if (f->resv == MAP_FAILED) {
		snprintf(why, len, "reserving %zu bytes: %s", f->resv_len,
			 strerror(errno));
		f->resv = NULL;
		return -ENOMEM;
	}
	f->size = size;
	f->nr = nr;
	f->cross = -1;
	f->seed = seed;
	src = f->resv + pmdsize;
	for (int attempt = 0; attempt < 3; attempt++) {
		ret = fault_folio(src, size, seed, shmem ? f->fd : -1);
		if (ret) {
			snprintf(why, len, "mapping the folio: %s", strerror(-ret));
			goto fail;
		}
		f->addr = src;
		if (!folio_check(f, why, len))
			break;
		ret = -EAGAIN;
		if (!is_root())
			goto fail;
	}
	if (ret)
		goto fail;
	if (cross > 0) {
		ret = folio_move(f, cross, why, len);
		if (ret)
			goto fail;
	}
	if (!pagemap_read(f->addr, 1, &e))
		f->pfn = e.pfn;
	return 0;
fail:
	folio_destroy(f);
	return ret;
}

int folio_build(size_t size, long cross, uint64_t seed,
		struct large_folio *f, char *why, size_t len)
{
	return build(size, cross, seed, false, f, why, len);
}

int shmem_folio_build(size_t size, long cross, uint64_t seed,
		      struct large_folio *f, char *why, size_t len)
{
	return build(size, cross, seed, true, f, why, len);
}

int folio_move(struct large_folio *f, long cross, char *why, size_t len)
{
	char *dst = f->resv + 3 * pmdsize - cross * pagesize;

	if (f->cross >= 0 || cross <= 0 || cross >= (long)f->nr) {
		snprintf(why, len, "cannot move: folio at offset %ld, asked %ld",
			 f->cross, cross);
		return -EINVAL;
	}
	if (mremap(f->addr, f->size, f->size, MREMAP_MAYMOVE | MREMAP_FIXED,
		   dst) == MAP_FAILED) {
		snprintf(why, len, "mremap to %p: %s", dst, strerror(errno));
		return -errno;
	}
	f->addr = dst;
	f->cross = cross;
	/* a shmem PMD mapping is dropped by the move: fault it in again */
	for (size_t i = 0; f->shmem && i < f->nr; i++)
		(void)*(volatile char *)(f->addr + i * pagesize);
	return folio_check(f, why, len) ? -EIO : 0;
}

void folio_destroy(struct large_folio *f)
{
	if (f->resv)
		munmap(f->resv, f->resv_len);
	if (f->shmem)
		close(f->fd);
	f->shmem = false;
	f->resv = NULL;
	f->addr = NULL;
}

/* ---- per-page checks ------------------------------------------------------ */

void bad_pages_init(struct bad_pages *b, char *msg, size_t len)
{
	b->msg = msg;
	b->len = len;
	b->used = 0;
	b->n = 0;
	if (len)
		msg[0] = '\0';
}

void bad_page(struct bad_pages *b, const char *fmt, ...)
{
	va_list ap;

	if (++b->n > 4)
		return;
	if (b->used && b->used < b->len)
		b->used += snprintf(b->msg + b->used, b->len - b->used, "; ");
	va_start(ap, fmt);
	if (b->used < b->len)
		b->used += vsnprintf(b->msg + b->used, b->len - b->used, fmt, ap);
	va_end(ap);
}

int bad_pages_done(struct bad_pages *b)
{
	if (b->n > 4 && b->used < b->len)
		snprintf(b->msg + b->used, b->len - b->used, "; and %d more",
			 b->n - 4);
	return b->n;
}

int pm_unchanged(const struct pm_entry *before, const struct pm_entry *after,
		 size_t n, char *msg, size_t len)
{
	struct bad_pages b;

	bad_pages_init(&b, msg, len);
	for (size_t i = 0; i < n; i++)
		if (before[i].raw != after[i].raw)
			bad_page(&b, "page %zu: pagemap %#llx (%s), was %#llx (%s)",
				 i, (unsigned long long)after[i].raw,
				 pm_state(&after[i]),
				 (unsigned long long)before[i].raw,
				 pm_state(&before[i]));
	return bad_pages_done(&b);
}

int access_check(char *addr, size_t first, size_t n, bool write,
		 bool want_fault, char *msg, size_t len)
{
	const char *what = write ? "write" : "read";
	const char *state = want_fault ? (write ? "read-only" : "inaccessible") :
					 (write ? "writable" : "readable");
	struct bad_pages b;

	bad_pages_init(&b, msg, len);
	for (size_t i = first; i < first + n; i++) {
		int sig = access_signal(addr + i * pagesize, write);

		if (want_fault && sig != SIGSEGV)
			bad_page(&b, "page %zu (%s): a %s %s%s", i, state, what,
				 sig ? "raised " : write ? "landed" : "went through",
				 sig ? strsignal(sig) : "");
		else if (!want_fault && sig)
			bad_page(&b, "page %zu (%s): a %s raised %s", i, state,
				 what, strsignal(sig));
	}
	return bad_pages_done(&b);
}

int writes_check(char *addr, size_t first, size_t n, bool want_fault,
		 char *msg, size_t len)
{
	return access_check(addr, first, n, true, want_fault, msg, len);
}

/* ---- pins and userfaultfd ------------------------------------------------- */

#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif

int pin_pages(void *addr, size_t len)
{
	struct io_uring_params p;
	struct iovec iov = { addr, len };
	int fd, err;

	memset(&p, 0, sizeof(p));
	fd = syscall(__NR_io_uring_setup, 1, &p);
	if (fd < 0)
		return -errno;
	if (syscall(__NR_io_uring_register, fd, IORING_REGISTER_BUFFERS, &iov, 1)) {
		err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

void unpin_pages(int fd)
{
	syscall(__NR_io_uring_register, fd, IORING_UNREGISTER_BUFFERS, NULL, 0);
	close(fd);
}

int uffd_wp_range(int uffd, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	return ioctl(uffd, UFFDIO_WRITEPROTECT, &w) ? -errno : 0;
}

#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif
#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, 0x05, struct uffdio_move)
#endif

/*
 * A userfaultfd asking for features, [addr, addr + len) registered in
 * mode; need: features the kernel must offer. The fd, or -1 and why.
 */
static int uffd_open(void *addr, size_t len, uint64_t features, uint64_t need,
		     uint64_t mode, char *why, size_t why_len)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};
	int fd;

#ifdef __NR_userfaultfd
	fd = syscall(__NR_userfaultfd, O_CLOEXEC | O_NONBLOCK);
#else
	fd = -1;
	errno = ENOSYS;
#endif
	if (fd < 0) {
		snprintf(why, why_len, "userfaultfd: %s", strerror(errno));
		return -1;
	}
	if (ioctl(fd, UFFDIO_API, &api)) {
		snprintf(why, why_len, "UFFDIO_API (features %#llx): %s",
			 (unsigned long long)features, strerror(errno));
		goto fail;
	}
	if ((api.features & need) != need) {
		snprintf(why, why_len, "userfaultfd without feature %#llx (offers %#llx)",
			 (unsigned long long)need,
			 (unsigned long long)api.features);
		goto fail;
	}
	if (ioctl(fd, UFFDIO_REGISTER, &reg)) {
		snprintf(why, why_len, "UFFDIO_REGISTER (mode %#llx): %s",
			 (unsigned long long)mode, strerror(errno));
		goto fail;
	}
	return fd;
fail:
	close(fd);
	return -1;
}

int uffd_wp_open(void *addr, size_t len, uint64_t features, bool protect,
		 char *why, size_t why_len)
{
	int fd = uffd_open(addr, len, features, UFFD_FEATURE_PAGEFAULT_FLAG_WP,
			   UFFDIO_REGISTER_MODE_WP, why, why_len), err;

	if (fd >= 0 && protect && (err = uffd_wp_range(fd, addr, len, true))) {
		snprintf(why, why_len, "UFFDIO_WRITEPROTECT: %s", strerror(-err));
		close(fd);
		return -1;
	}
	return fd;
}

int uffd_move_open(void *addr, size_t len, char *why, size_t why_len)
{
	return uffd_open(addr, len, 0, UFFD_FEATURE_MOVE,
			 UFFDIO_REGISTER_MODE_MISSING, why, why_len);
}

int uffd_move(int uffd, void *dst, void *src, size_t len)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src, .len = len,
	};

	if (ioctl(uffd, UFFDIO_MOVE, &m))
		return -errno;
	return m.move == (__s64)len ? 0 : -EAGAIN;
}

static void *wp_serve(void *arg)
{
	struct wp_server *s = arg;
	struct pollfd pfd = { .fd = s->uffd, .events = POLLIN };

	while (!s->stop) {
		struct uffd_msg msg;
		uintptr_t addr, base = (uintptr_t)s->base;

		if (poll(&pfd, 1, 20) <= 0)
			continue;
		if (read(s->uffd, &msg, sizeof(msg)) != sizeof(msg))
			continue;
		if (msg.event != UFFD_EVENT_PAGEFAULT) {
			__atomic_add_fetch(&s->other, 1, __ATOMIC_SEQ_CST);
			continue;
		}
		addr = msg.arg.pagefault.address & ~(uintptr_t)(pagesize - 1);
		if (!(msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) ||
		    addr < base || addr >= base + s->nr * pagesize)
			__atomic_add_fetch(&s->other, 1, __ATOMIC_SEQ_CST);
		else
			__atomic_add_fetch(&s->faults[(addr - base) / pagesize],
					   1, __ATOMIC_SEQ_CST);
		/* unprotect, which wakes the writer */
		if (uffd_wp_range(s->uffd, (void *)addr, pagesize, false)) {
			struct uffdio_range r = { .start = addr, .len = pagesize };

			__atomic_add_fetch(&s->other, 1, __ATOMIC_SEQ_CST);
			ioctl(s->uffd, UFFDIO_WAKE, &r);
		}
	}
	return NULL;
}

int wp_server_start(struct wp_server *s, int uffd, char *base, size_t nr)
{
	s->uffd = uffd;
	s->base = base;
	s->nr = nr;
	s->stop = 0;
	s->other = 0;
	s->faults = calloc(nr, sizeof(int));
	if (!s->faults)
		return -ENOMEM;
	if (pthread_create(&s->thread, NULL, wp_serve, s)) {
		free(s->faults);
		s->faults = NULL;
		return -EAGAIN;
	}
	return 0;
}

int wp_faults_check(const struct wp_server *s, char *msg, size_t len)
{
	struct bad_pages b;

	bad_pages_init(&b, msg, len);
	for (size_t i = 0; i < s->nr; i++)
		if (s->faults[i] != 1)
			bad_page(&b, "page %zu: %d uffd-wp faults on write, expected 1%s",
				 i, s->faults[i],
				 s->faults[i] ? "" : " (the write landed silently)");
	if (s->other)
		bad_page(&b, "%d faults or events that were not uffd-wp faults on the range, or failed unprotects",
			 s->other);
	return bad_pages_done(&b);
}

void wp_server_stop(struct wp_server *s)
{
	if (!s->faults)
		return;
	s->stop = 1;
	pthread_join(s->thread, NULL);
	free(s->faults);
	s->faults = NULL;
}

/* ---- kernel log ----------------------------------------------------------- */

bool kmsg_is_bad(const char *msg)
{
	static const char *const bad[] = {
		"WARNING:", "BUG:", "kernel BUG at", "Oops", "Bad page",
		"Bad rss-counter", "general protection fault",
		"Unable to handle kernel", "list_add corruption",
		"list_del corruption", "page dumped because", "Kernel panic",
		"detected stalls", "soft lockup", "blocked for more than",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (strstr(msg, bad[i]))
			return true;
	return false;
}

bool kmsg_record_is_bad(const char *record, char *msg, size_t len)
{
	const char *text = strchr(record, ';');
	size_t n;

	/* prio = facility << 3 | level; the kernel's own facility is 0. */
	if (!text || strtol(record, NULL, 10) >> 3 != 0)
		return false;
	text++;
	n = strcspn(text, "\n");
	if (msg && len) {
		snprintf(msg, len, "%.*s", (int)n, text);
		return kmsg_is_bad(msg);
	}
	{
		char line[1024];

		snprintf(line, sizeof(line), "%.*s", (int)n, text);
		return kmsg_is_bad(line);
	}
}

void kmsg_begin(struct kmsg_watch *w)
{
	w->records = 0;
	w->fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK);
	if (w->fd >= 0)
		lseek(w->fd, 0, SEEK_END);
}

int kmsg_check(struct kmsg_watch *w, char *first, size_t len)
{
	char rec[2048], msg[1024];
	int bad = 0;

	if (w->fd < 0)
		return 0;
	for (;;) {
		ssize_t n = read(w->fd, rec, sizeof(rec) - 1);

		if (n < 0 && errno == EPIPE)	/* records overwritten */
			continue;
		if (n <= 0)
			break;
		rec[n] = '\0';
		w->records++;
		if (kmsg_record_is_bad(rec, msg, sizeof(msg)) && bad++ == 0 &&
		    first)
			snprintf(first, len, "%s", msg);
	}
	return bad;
}

void kmsg_end(struct kmsg_watch *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}

/* ---- misc ----------------------------------------------------------------- */

bool is_root(void)
{
	return geteuid() == 0;
}

void stack_prefault(void)
{
	volatile char buf[512 * 1024];

	for (size_t i = 0; i < sizeof(buf); i += 1024)
		buf[i] = 0;
}

void maps_prefault(void)
{
	char buf[65536], *line;
	unsigned long start, end;
	volatile char sink;
	char perms[8];
	long n;

	n = read_file("/proc/self/maps", buf, sizeof(buf));
	if (n <= 0)
		return;
	for (line = buf; line && *line; line = strchr(line, '\n'),
	     line = line ? line + 1 : NULL) {
		unsigned long ino;

		if (sscanf(line, "%lx-%lx %7s %*s %*s %lu", &start, &end, perms,
			   &ino) != 4 || perms[0] != 'r' || !ino)
			continue;
		for (unsigned long a = start; a < end; a += pagesize)
			sink = *(volatile char *)a;
	}
	(void)sink;
}

bool soft_dirty_supported(void)
{
	char *p = mmap(NULL, pagesize, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pm_entry e = { 0 };

	if (p == MAP_FAILED)
		return false;
	/* A new PTE is soft-dirty wherever the kernel tracks the bit. */
	p[0] = 1;
	pagemap_read(p, 1, &e);
	munmap(p, pagesize);
	return e.soft_dirty;
}

bool swap_active(void)
{
	char buf[4096];
	char *nl;

	if (read_file("/proc/swaps", buf, sizeof(buf)) <= 0)
		return false;
	nl = strchr(buf, '\n');
	return nl && nl[1] != '\0';
}
