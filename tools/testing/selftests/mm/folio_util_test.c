// SPDX-License-Identifier: GPL-2.0
/*
 * Unit tests of folio_util's own logic on synthetic input: a mistake here
 * would make every other test see the kernel wrong. Needs neither root nor
 * any kernel feature.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../kselftest_harness.h"
#include "folio_test.h"

/* pagemap: a present entry with flags, and a swap entry's type and offset. */
TEST(pm_decode_present)
{
	struct pm_entry e;

	pm_decode(PM_PRESENT | PM_MMAP_EXCLUSIVE | PM_SOFT_DIRTY | 0x12345, &e);
	EXPECT_TRUE(e.present);
	EXPECT_FALSE(e.swapped);
	EXPECT_TRUE(e.exclusive);
	EXPECT_TRUE(e.soft_dirty);
	EXPECT_FALSE(e.uffd_wp);
	EXPECT_FALSE(e.file);
	EXPECT_EQ(0x12345, e.pfn);
	EXPECT_STREQ("present", pm_state(&e));
}

TEST(pm_decode_swap)
{
	uint64_t offset = 0x2abcdefULL, type = 3;
	struct pm_entry e;

	pm_decode(PM_SWAP | PM_UFFD_WP | (offset << 5) | type, &e);
	EXPECT_FALSE(e.present);
	EXPECT_TRUE(e.swapped);
	EXPECT_TRUE(e.uffd_wp);
	EXPECT_EQ(type, e.swap_type);
	EXPECT_EQ(offset, e.swap_offset);
	EXPECT_EQ(0, e.pfn);
	EXPECT_STREQ("swapped", pm_state(&e));
	/* A uffd-wp PTE marker: swap bit, no type, no offset. */
	pm_decode(PM_SWAP | PM_UFFD_WP, &e);
	EXPECT_STREQ("marker", pm_state(&e));
	pm_decode(0, &e);
	EXPECT_STREQ("none", pm_state(&e));
}

/* pagemap of our own memory: present after a write, absent after DONTNEED. */
TEST(pagemap_self)
{
	char *p = mmap(NULL, 4 * pagesize, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct pm_entry e[4];

	ASSERT_NE(MAP_FAILED, p);
	p[0] = 1;
	p[2 * pagesize] = 1;
	ASSERT_EQ(0, pagemap_read(p, 4, e));
	EXPECT_TRUE(e[0].present);
	EXPECT_FALSE(e[1].present);
	EXPECT_TRUE(e[2].present);
	EXPECT_EQ(2, pages_present(p, 4));
	madvise(p, 4 * pagesize, MADV_DONTNEED);
	EXPECT_EQ(0, pages_present(p, 4));
	munmap(p, 4 * pagesize);
}

TEST(settings_parse)
{
	char v[32];

	settings_parse_value("always [madvise] never\n", v, sizeof(v));
	EXPECT_STREQ("madvise", v);
	settings_parse_value("[always] inherit madvise never", v, sizeof(v));
	EXPECT_STREQ("always", v);
	settings_parse_value("always defer defer+madvise [madvise] never", v,
			     sizeof(v));
	EXPECT_STREQ("madvise", v);
	settings_parse_value("  511\n", v, sizeof(v));
	EXPECT_STREQ("511", v);
	settings_parse_value("10000", v, 3);
	EXPECT_STREQ("10", v);
}

static void put(const char *dir, const char *name, const char *text,
		mode_t mode)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	chmod(path, mode);
}

static void get(const char *dir, const char *name, char *out, size_t len)
{
	char path[1024];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "r");
	if (!f || !fgets(out, len, f))
		out[0] = '\0';
	if (f)
		fclose(f);
	out[strcspn(out, "\n")] = '\0';
}

/*
 * Save and restore on a synthetic sysfs tree: writable files at the top, in
 * khugepaged/ and hugepages-*\/ are saved (stats/ and read-only ones are
 * not), and restore writes the saved words back.
 */
TEST(settings_save_restore)
{
	char dir[] = "/tmp/folio_util_test.XXXXXX", sub[600], v[64];
	size_t sizes[4];

	ASSERT_NE(NULL, mkdtemp(dir));
	put(dir, "enabled", "always [madvise] never", 0644);
	put(dir, "hpage_pmd_size", "2097152", 0444);
	snprintf(sub, sizeof(sub), "%s/khugepaged", dir);
	mkdir(sub, 0755);
	put(sub, "pages_to_scan", "4096", 0644);
	put(sub, "pages_collapsed", "7", 0444);
	snprintf(sub, sizeof(sub), "%s/hugepages-64kB", dir);
	mkdir(sub, 0755);
	put(sub, "enabled", "always inherit madvise [never]", 0644);
	snprintf(sub, sizeof(sub), "%s/hugepages-64kB/stats", dir);
	mkdir(sub, 0755);
	put(sub, "split_deferred", "5", 0644);
	snprintf(sub, sizeof(sub), "%s/hugepages-8kB", dir);
	mkdir(sub, 0755);
	put(sub, "enabled", "always [inherit] madvise never", 0644);

	settings_set_root(dir);
	ASSERT_EQ(2, mthp_sizes(sizes, 4));
	EXPECT_EQ(8192, sizes[0]);
	EXPECT_EQ(65536, sizes[1]);
	EXPECT_TRUE(mthp_size_offered(65536));
	EXPECT_FALSE(mthp_size_offered(32768));

	ASSERT_EQ(0, settings_save());
	ASSERT_EQ(0, mthp_only(65536));
	ASSERT_EQ(0, setting_set("khugepaged/pages_to_scan", "8"));
	ASSERT_EQ(0, setting_set("enabled", "always"));
	get(dir, "hugepages-64kB/enabled", v, sizeof(v));
	EXPECT_STREQ("madvise", v);
	get(dir, "hugepages-8kB/enabled", v, sizeof(v));
	EXPECT_STREQ("never", v);
	/* Not a setting: must never be written by a restore. */
	put(dir, "hugepages-64kB/stats/split_deferred", "6", 0644);

	EXPECT_EQ(0, settings_restore());
	get(dir, "enabled", v, sizeof(v));
	EXPECT_STREQ("madvise", v);
	get(dir, "khugepaged/pages_to_scan", v, sizeof(v));
	EXPECT_STREQ("4096", v);
	get(dir, "hugepages-64kB/enabled", v, sizeof(v));
	EXPECT_STREQ("never", v);
	get(dir, "hugepages-8kB/enabled", v, sizeof(v));
	EXPECT_STREQ("inherit", v);
	get(dir, "hugepages-64kB/stats/split_deferred", v, sizeof(v));
	EXPECT_STREQ("6", v);
	get(dir, "khugepaged/pages_collapsed", v, sizeof(v));
	EXPECT_STREQ("7", v);
	EXPECT_EQ(5, counter_read("thp:split_deferred", 65536) - 1);
	EXPECT_EQ(7, counter_read("khugepaged:pages_collapsed", 0));

	/* A file that will not take the value makes restore report it. */
	put(dir, "khugepaged/pages_to_scan", "1", 0644);
	ASSERT_EQ(0, chmod(dir, 0755));
	snprintf(sub, sizeof(sub), "%s/khugepaged/pages_to_scan", dir);
	unlink(sub);
	mkdir(sub, 0755);	/* now a directory: write fails */
	EXPECT_NE(0, settings_restore());
	rmdir(sub);

	snprintf(sub, sizeof(sub), "rm -rf %s", dir);
	system(sub);
}

/* Patterns: own page original, zeroed, another page's, torn, foreign run. */
TEST(pattern_classes)
{
	char *buf = malloc(3 * pagesize);
	uint64_t seed = pattern_seed(1), other = 0;

	ASSERT_NE(NULL, buf);
	pattern_fill_range(buf, 3, seed, 10);
	EXPECT_EQ(PAGE_ORIGINAL, pattern_classify(buf, seed, 10, NULL));
	EXPECT_EQ(PAGE_ORIGINAL, pattern_classify(buf + 2 * pagesize, seed, 12,
						  NULL));
	EXPECT_EQ(PAGE_OTHER, pattern_classify(buf + pagesize, seed, 10, &other));
	EXPECT_EQ(11, other);
	/* Another generation of the same run is not the original. */
	EXPECT_EQ(PAGE_GARBAGE, pattern_classify(buf, pattern_seed(2), 10, NULL));
	/* One flipped byte in the middle of the body. */
	buf[pagesize / 2] ^= 1;
	EXPECT_EQ(PAGE_GARBAGE, pattern_classify(buf, seed, 10, NULL));
	/* The last byte alone written: not zero, not original. */
	memset(buf, 0, pagesize);
	EXPECT_EQ(PAGE_ZERO, pattern_classify(buf, seed, 10, NULL));
	buf[pagesize - 1] = 1;
	EXPECT_EQ(PAGE_GARBAGE, pattern_classify(buf, seed, 10, NULL));
	/* Every page differs from every other. */
	EXPECT_NE(0, memcmp(buf + pagesize + 24, buf + 2 * pagesize + 24,
			    pagesize - 24));
	free(buf);
}

/* verify_pages: counts and names what is wrong, per-page allowances. */
TEST(verify_messages)
{
	char *buf = malloc(6 * pagesize), msg[512];
	uint64_t seed = pattern_seed(3);
	unsigned int allowed[6];

	ASSERT_NE(NULL, buf);
	pattern_fill_range(buf, 6, seed, 0);
	EXPECT_EQ(0, verify_all(buf, 6, seed, 0, PAGE_ORIGINAL, msg,
				sizeof(msg)));
	EXPECT_STREQ("", msg);
	memset(buf + pagesize, 0, pagesize);			/* page 1 zero */
	memcpy(buf + 3 * pagesize, buf + 4 * pagesize, pagesize); /* 3 <- 4 */
	EXPECT_EQ(2, verify_all(buf, 6, seed, 0, PAGE_ORIGINAL, msg,
				sizeof(msg)));
	EXPECT_STREQ("page 1: expected original, seen zero; "
		     "page 3: expected original, seen page 4's data", msg);
	EXPECT_EQ(1, verify_all(buf, 6, seed, 0, PAGE_ORIGINAL | PAGE_ZERO,
				msg, sizeof(msg)));
	for (int i = 0; i < 6; i++)
		allowed[i] = PAGE_ORIGINAL;
	allowed[1] = PAGE_ZERO;
	allowed[3] = PAGE_OTHER;
	EXPECT_EQ(0, verify_pages(buf, 6, seed, 0, allowed, true, msg,
				  sizeof(msg)));
	memset(buf, 0xaa, 6 * pagesize);
	EXPECT_EQ(6, verify_all(buf, 6, seed, 0, PAGE_ORIGINAL | PAGE_ZERO,
				msg, sizeof(msg)));
	EXPECT_NE(NULL, strstr(msg, "page 0: expected original|zero, seen garbage"));
	EXPECT_NE(NULL, strstr(msg, "and 2 more"));
	free(buf);
}

/* verify_written: written pages compared to the copy, the rest by class. */
TEST(verify_written_pages)
{
	char *buf = malloc(4 * pagesize), *copy = malloc(4 * pagesize), msg[512];
	bool written[4] = { false, true, false, true };
	uint64_t seed = pattern_seed(4);

	ASSERT_NE(NULL, buf);
	ASSERT_NE(NULL, copy);
	pattern_fill_range(buf, 4, seed, 0);
	buf[pagesize + 7] ^= 0x5a;
	buf[4 * pagesize - 1] ^= 0x5a;
	memcpy(copy, buf, 4 * pagesize);
	memset(buf + 2 * pagesize, 0, pagesize);
	EXPECT_EQ(0, verify_written(buf, copy, 4, written, seed, 0,
				    PAGE_ORIGINAL | PAGE_ZERO, msg, sizeof(msg)))
		TH_LOG("%s", msg);
	EXPECT_EQ(1, verify_written(buf, copy, 4, written, seed, 0,
				    PAGE_ORIGINAL, msg, sizeof(msg)));
	EXPECT_STREQ("page 2: expected original, seen zero", msg);
	/* a written page that lost its write reads as the original again */
	buf[pagesize + 7] ^= 0x5a;
	EXPECT_EQ(1, verify_written(buf, copy, 4, written, seed, 0,
				    PAGE_ORIGINAL | PAGE_ZERO, msg, sizeof(msg)));
	EXPECT_STREQ("page 1 (written): differs at byte 7, seen original", msg);
	free(buf);
	free(copy);
}

TEST(smaps_lines)
{
	struct smaps_sum s = { 0 };

	smaps_parse_line("Rss:                2048 kB\n", &s);
	smaps_parse_line("LazyFree:             64 kB\n", &s);
	smaps_parse_line("AnonHugePages:      2048 kB\n", &s);
	smaps_parse_line("ShmemPmdMapped:        0 kB\n", &s);
	smaps_parse_line("Swap:                 16 kB\n", &s);
	smaps_parse_line("SwapPss:              99 kB\n", &s);
	smaps_parse_line("Locked:                8 kB\n", &s);
	smaps_parse_line("Rss:                   4 kB\n", &s);
	EXPECT_EQ(2052, s.rss);
	EXPECT_EQ(64, s.lazyfree);
	EXPECT_EQ(2048, s.anon_huge);
	EXPECT_EQ(16, s.swap);
	EXPECT_EQ(8, s.locked);
}

/* smaps of our own mapping: one VMA, its Rss. */
TEST(smaps_self)
{
	char *p = mmap(NULL, 8 * pagesize, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	struct smaps_sum s;

	ASSERT_NE(MAP_FAILED, p);
	memset(p, 1, 3 * pagesize);
	ASSERT_EQ(0, smaps_range(p, 8 * pagesize, &s));
	EXPECT_EQ(1, s.vmas);
	EXPECT_EQ((long)(3 * pagesize / 1024), s.rss);
	munmap(p, 8 * pagesize);
}

TEST(kmsg_lines)
{
	EXPECT_TRUE(kmsg_is_bad("BUG: Bad page map in process a.out  pte:8000000106d12025 pmd:10a1b7067"));
	EXPECT_TRUE(kmsg_is_bad("BUG: Bad page state in process kswapd0  pfn:106d12"));
	EXPECT_TRUE(kmsg_is_bad("BUG: Bad rss-counter state mm:000000007e48c2a5 type:MM_ANONPAGES val:-16"));
	EXPECT_TRUE(kmsg_is_bad("WARNING: CPU: 1 PID: 337 at mm/rmap.c:1849 try_to_unmap_one+0x6a1/0x1080"));
	EXPECT_TRUE(kmsg_is_bad("kernel BUG at mm/huge_memory.c:2973!"));
	EXPECT_TRUE(kmsg_is_bad("Oops: general protection fault, probably for non-canonical address 0xdead000000000108: 0000 [#1] SMP"));
	EXPECT_FALSE(kmsg_is_bad("Adding 1048572k swap on /dev/zram1.  Priority:-2 extents:1 across:1048572k SS"));
	EXPECT_FALSE(kmsg_is_bad("zram1: detected capacity change from 0 to 2097152"));
	EXPECT_FALSE(kmsg_is_bad("Injecting memory failure for pfn 0x106d12 at process virtual address 0x7f1000000000"));
}

/* Records: only the kernel's own (facility 0) count; the message is cut out. */
TEST(kmsg_records)
{
	char msg[256];

	EXPECT_TRUE(kmsg_record_is_bad("4,1234,5678901,-;WARNING: CPU: 0 PID: 1 at mm/rmap.c:1 x\n SUBSYSTEM=x\n", msg, sizeof(msg)));
	EXPECT_STREQ("WARNING: CPU: 0 PID: 1 at mm/rmap.c:1 x", msg);
	EXPECT_TRUE(kmsg_record_is_bad("1,99,1,-;BUG: Bad page state in process a.out  pfn:1\n", NULL, 0));
	EXPECT_FALSE(kmsg_record_is_bad("6,100,2,-;zram1: detected capacity change\n", msg, sizeof(msg)));
	/* user space (facility 1, LOG_USER) writing the same words */
	EXPECT_FALSE(kmsg_record_is_bad("12,101,3,-;WARNING: not the kernel\n", msg, sizeof(msg)));
	EXPECT_FALSE(kmsg_record_is_bad("garbage without a separator", msg, sizeof(msg)));
}

/*
 * The watcher on the live log: it sees records logged after kmsg_begin()
 * and not before, and a bad line that user space writes is not the
 * kernel's.
 */
TEST(kmsg_live)
{
	struct kmsg_watch w;
	char first[256] = "";
	int fd;

	if (!is_root())
		SKIP(return, "writing /dev/kmsg needs root");
	fd = open("/dev/kmsg", O_WRONLY);
	ASSERT_LE(0, fd);
	/* write(2), one record each: glibc's dprintf() gives up on /dev/kmsg */
	ASSERT_LT(0, write(fd, "folio_util_test: before the watch", 33));
	kmsg_begin(&w);
	ASSERT_LE(0, w.fd);
	ASSERT_LT(0, write(fd, "folio_util_test: WARNING: from user space", 41));
	EXPECT_EQ(0, kmsg_check(&w, first, sizeof(first))) TH_LOG("%s", first);
	EXPECT_EQ(1, w.records);
	EXPECT_EQ(0, kmsg_check(&w, first, sizeof(first)));
	EXPECT_EQ(1, w.records);
	kmsg_end(&w);
	close(fd);
}

/*
 * The LRU reclaim driver reaches anonymous memory MADV_PAGEOUT is not
 * asked about: written pages end up swapped within a bounded number of
 * rounds.
 */
static bool all_swapped(void *arg)
{
	char *p = arg;

	return pages_swapped(p, 256) == 256;
}

TEST(lru_reclaim_anon)
{
	struct lru_reclaim r;
	char *p;
	int round;

	if (!is_root())
		SKIP(return, "reclaim files need root");
	if (!swap_active())
		SKIP(return, "no active swap (run_vmtests.sh sets up zram)");
	if (lru_reclaim_init(&r) == LRU_NONE)
		SKIP(return, "no LRU reclaim driver: %s", r.why);
	p = mmap(NULL, 256 * pagesize, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	pattern_fill_range(p, 256, pattern_seed(9), 0);
	round = lru_reclaim_until(&r, 256 * pagesize * 64, 200, all_swapped, p,
				  50);
	TH_LOG("driver %s, all swapped after round %d",
	       r.path, round);
	EXPECT_LT(0, round) TH_LOG("%ld of 256 pages swapped after 50 rounds",
				   pages_swapped(p, 256));
	EXPECT_EQ(0, verify_all(p, 256, pattern_seed(9), 0, PAGE_ORIGINAL, NULL, 0));
	lru_reclaim_fini(&r);
	munmap(p, 256 * pagesize);
}

/*
 * Counters: vmstat and status read; deltas; an unknown name says so.
 * VmData is exact on every kernel (RssAnon only from 6.2 on: before, each
 * task cached its RSS changes and synced them every 64 events).
 */
TEST(counters)
{
	struct counters c;
	char *p;

	counters_begin(&c, 65536, "vm:nr_anon_pages", "status:VmData",
		       "vm:no_such_counter", NULL);
	EXPECT_TRUE(counters_has(&c, "status:VmData"));
	EXPECT_FALSE(counters_has(&c, "vm:no_such_counter"));
	EXPECT_EQ(LONG_MIN, counters_delta(&c, "vm:no_such_counter"));
	EXPECT_EQ(LONG_MIN, counters_delta(&c, "never:asked"));
	p = mmap(NULL, 64 * pagesize, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	ASSERT_NE(MAP_FAILED, p);
	EXPECT_EQ((long)(64 * pagesize / 1024), counters_delta(&c, "status:VmData"));
	munmap(p, 64 * pagesize);
	EXPECT_EQ(0, counters_delta(&c, "status:VmData"));
}

/* No settings_save() here: the synthetic-tree test saves its own tree. */
int main(int argc, char **argv)
{
	folio_util_init();
	return test_harness_run(argc, argv);
}
