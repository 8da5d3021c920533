/*
 * folio_bench: the measuring half of tools/folio-bench. Times the batched
 * unmap paths over large folios and writes every sample as JSON, with the
 * counter deltas that explain each time and the machine's facts. The
 * statistics, comparison and plots are done by tools/folio-bench (Python),
 * so that this program alone can run where there is no Python (in a VM).
 *
 *   folio_bench [-w WORKLOAD[,..]] [-s SIZE_KB[,..]|all] [-m MB] [-r RUNS]
 *               [-W WARMUP] [--zram] [-o FILE.json] [--markers]
 *
 * Workloads (default: all), each sample a fresh mapping of MB MiB of one
 * mTHP size faulted with MADV_HUGEPAGE, then one timed call:
 *   lazyfree-reclaim  MADV_FREE, then timed MADV_PAGEOUT (seeds 000/001)
 *   anon-swapout      non-repeating data, timed MADV_PAGEOUT (seed 002);
 *                     needs swap: active, or --zram for a temporary one
 *   collapse          timed MADV_COLLAPSE of the mTHP-mapped range (004)
 *   zap               timed munmap() of the range
 * Sizes: default every anonymous mTHP size the kernel offers (PMD included).
 * For the run, the size measured is set to madvise and the others to never;
 * every setting is put back and the zram device removed at exit, also on
 * SIGINT/SIGTERM/SIGHUP. Exit: 0 done, 2 bad usage (nothing changed),
 * 4 cannot run (reason on stderr).
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/swap.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "folio_util.h"

#ifndef MADV_COLLAPSE
#define MADV_COLLAPSE 25
#endif

#define THP "/sys/kernel/mm/transparent_hugepage"
#define MAX_RUNS 1000

static const char *const workloads[] = { "lazyfree-reclaim", "anon-swapout",
					 "collapse", "zap" };
#define NWORK 4
/* per-size stats (hugepages-<size>kB/stats/) and /proc/vmstat counters */
static const char *const size_stats[] = { "split_deferred", "swpout",
					  "swpout_fallback", "split" };
static const char *const vm_stats[] = { "thp_split_pmd", "pglazyfreed",
					"thp_collapse_alloc", "swpout_zero",
					"pswpout" };
#define NSIZE_STATS 4
#define NVM_STATS 5

static size_t page, pmd;

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "folio_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

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

/* ---- what the run changes, and its undoing -------------------------------- */
static int zram_dev = -1, zram_on;
static char zram_path[32];

/* The temporary zram swap; THP settings are folio_util's to restore. */
static void zram_down(void)
{
	char buf[16];

	if (zram_on)
		swapoff(zram_path);
	zram_on = 0;
	if (zram_dev >= 0) {
		snprintf(buf, sizeof(buf), "%d", zram_dev);
		sysfs_write("/sys/class/zram-control/hot_remove", buf);
	}
	zram_dev = -1;
}

static const char *zram_up(size_t bytes)
{
	char buf[32], path[64], cmd[96];

	if (sysfs_read("/sys/class/zram-control/hot_add", buf, sizeof(buf)) < 0)
		return "no swap active and no zram-control (modprobe zram)";
	zram_dev = atoi(buf);
	snprintf(path, sizeof(path), "/sys/block/zram%d/disksize", zram_dev);
	snprintf(buf, sizeof(buf), "%zu", bytes);
	if (sysfs_write(path, buf))
		return "cannot size the zram device";
	snprintf(zram_path, sizeof(zram_path), "/dev/zram%d", zram_dev);
	snprintf(cmd, sizeof(cmd), "mkswap %s >/dev/null 2>&1", zram_path);
	if (system(cmd) || swapon(zram_path, 0))
		return "mkswap/swapon of the zram device failed";
	zram_on = 1;
	fprintf(stderr, "folio_bench: temporary swap %s, %zu MiB\n", zram_path,
		bytes >> 20);
	return NULL;
}

/* ---- counters ------------------------------------------------------------- */
static void counters(unsigned long kb, long *c)
{
	char name[64];

	for (int i = 0; i < NSIZE_STATS; i++) {
		snprintf(name, sizeof(name), "thp:%s", size_stats[i]);
		c[i] = counter_read(name, kb << 10);
	}
	for (int i = 0; i < NVM_STATS; i++) {
		snprintf(name, sizeof(name), "vm:%s", vm_stats[i]);
		c[NSIZE_STATS + i] = counter_read(name, 0);
	}
}

static uint64_t now_ns(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000000000ULL + t.tv_nsec;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return (x ^ (x >> 31)) | 1;
}

/* ---- one sample ------------------------------------------------------------ */
struct sample {
	uint64_t ns;
	long folios;
	long delta[NSIZE_STATS + NVM_STATS];
};

static int one_sample(int w, unsigned long kb, size_t len, unsigned run,
		      struct sample *s, char *why, size_t whylen)
{
	long before[NSIZE_STATS + NVM_STATS], after[NSIZE_STATS + NVM_STATS];
	long alloc0 = counter_read("thp:anon_fault_alloc", kb << 10);
	char *raw = mmap(NULL, len + pmd, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char *p;
	uint64_t t0, t1;
	int ret = 0;

	if (raw == MAP_FAILED) {
		snprintf(why, whylen, "mmap %zu bytes: %s", len, strerror(errno));
		return -1;
	}
	p = (char *)(((uintptr_t)raw + pmd - 1) & ~(pmd - 1));
	madvise(p, len, MADV_HUGEPAGE);
	if (!strcmp(workloads[w], "anon-swapout")) {
		uint64_t *q = (uint64_t *)p;

		for (size_t i = 0; i < len / 8; i++)
			q[i] = mix(((uint64_t)run << 40) + i);
	} else {
		for (size_t i = 0; i < len; i += page)
			memset(p + i, 1 + (i / page) % 250, page);
	}
	s->folios = counter_read("thp:anon_fault_alloc", kb << 10) - alloc0;
	if (!strcmp(workloads[w], "lazyfree-reclaim"))
		madvise(p, len, MADV_FREE);
	counters(kb, before);
	t0 = now_ns();
	switch (w) {
	case 0:
	case 1:
		ret = madvise(p, len, MADV_PAGEOUT);
		break;
	case 2:
		ret = madvise(p, len, MADV_COLLAPSE);
		break;
	case 3:
		ret = munmap(p, len);
		break;
	}
	t1 = now_ns();
	ret = ret ? errno : 0;
	if (ret)
		snprintf(why, whylen, "%s: %s", workloads[w], strerror(ret));
	counters(kb, after);
	for (int i = 0; i < NSIZE_STATS + NVM_STATS; i++)
		s->delta[i] = before[i] < 0 || after[i] < 0 ? 0 : after[i] - before[i];
	s->ns = t1 - t0;
	munmap(raw, len + pmd);
	errno = ret;
	return ret ? -1 : 0;
}

/* ---- JSON ------------------------------------------------------------------ */
static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++)
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	fputc('"', f);
}

static void cpu_model(char *out, size_t len)
{
	char line[512];
	FILE *f = fopen("/proc/cpuinfo", "r");

	snprintf(out, len, "unknown");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			snprintf(out, len, "%s", strchr(line, ':') + 2);
			out[strcspn(out, "\n")] = 0;
			break;
		}
	if (f)
		fclose(f);
}

static int hypervisor(void)
{
	char line[4096];
	int yes = 0;
	FILE *f = fopen("/proc/cpuinfo", "r");

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5) && strstr(line, " hypervisor"))
			yes = 1;
	if (f)
		fclose(f);
	return yes;
}

static void facts(FILE *f, unsigned mem_mb, unsigned runs, unsigned warmup)
{
	char model[256], load[64] = "", meminfo[64] = "";
	struct utsname u;
	time_t t = time(NULL);
	char when[32];

	uname(&u);
	cpu_model(model, sizeof(model));
	sysfs_read("/proc/loadavg", load, sizeof(load));
	load[strcspn(load, " ")] = 0;
	{
		FILE *m = fopen("/proc/meminfo", "r");

		if (m && fgets(meminfo, sizeof(meminfo), m))
			meminfo[strcspn(meminfo, "\n")] = 0;
		if (m)
			fclose(m);
	}
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(f, "{\n  \"tool\": \"folio-bench\",\n  \"format\": 1,\n");
	fprintf(f, "  \"kernel\": ");
	json_str(f, u.release);
	fprintf(f, ",\n  \"kernel_build\": ");
	json_str(f, u.version);
	fprintf(f, ",\n  \"machine\": {\"arch\": ");
	json_str(f, u.machine);
	fprintf(f, ", \"cpu\": ");
	json_str(f, model);
	fprintf(f, ", \"cpus\": %ld, \"hypervisor\": %s, \"mem\": ",
		sysconf(_SC_NPROCESSORS_ONLN), hypervisor() ? "true" : "false");
	json_str(f, meminfo);
	fprintf(f, ", \"page_size\": %zu, \"pmd_size\": %zu, \"loadavg_1min\": ",
		page, pmd);
	json_str(f, load);
	fprintf(f, "},\n  \"date\": \"%s\",\n  \"params\": {\"mem_mb\": %u, "
		"\"runs\": %u, \"warmup\": %u},\n  \"results\": [", when, mem_mb,
		runs, warmup);
}

static void result(FILE *f, int *first, int w, unsigned long kb,
		   const struct sample *s, unsigned n, const char *skip)
{
	fprintf(f, "%s\n    {\"workload\": \"%s\", \"size_kb\": %lu", *first ? "" : ",",
		workloads[w], kb);
	*first = 0;
	if (skip) {
		fprintf(f, ", \"skipped\": ");
		json_str(f, skip);
		fprintf(f, "}");
		return;
	}
	fprintf(f, ",\n     \"ns\": [");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s%llu", i ? ", " : "", (unsigned long long)s[i].ns);
	fprintf(f, "],\n     \"folios\": [");
	for (unsigned i = 0; i < n; i++)
		fprintf(f, "%s%ld", i ? ", " : "", s[i].folios);
	fprintf(f, "],\n     \"counters\": {");
	for (int c = 0; c < NSIZE_STATS + NVM_STATS; c++) {
		fprintf(f, "%s\"%s\": [", c ? ", " : "",
			c < NSIZE_STATS ? size_stats[c] : vm_stats[c - NSIZE_STATS]);
		for (unsigned i = 0; i < n; i++)
			fprintf(f, "%s%ld", i ? ", " : "", s[i].delta[c]);
		fprintf(f, "]");
	}
	fprintf(f, "}}");
}

static void usage(void)
{
	fprintf(stderr,
		"usage: folio_bench [-w WORKLOAD[,..]] [-s SIZE_KB[,..]|all] [-m MB]\n"
		"                   [-r RUNS] [-W WARMUP] [--zram] [-o FILE.json] [--markers]\n"
		"workloads: lazyfree-reclaim anon-swapout collapse zap (default all)\n"
		"sizes: mTHP sizes in kB the kernel offers (default all); -m 128,\n"
		"-r 10, -W 2; --zram: a temporary zram swap for anon-swapout;\n"
		"--markers: the JSON between FOLIO_BENCH_JSON_BEGIN/END lines\n");
}

static unsigned num(const char *opt, const char *v, unsigned lo, unsigned hi)
{
	char *end;
	unsigned long x = strtoul(v ? v : "", &end, 10);

	if (!v || !*v || *end || x < lo || x > hi) {
		fprintf(stderr, "folio_bench: %s wants a number %u..%u, got '%s'\n",
			opt, lo, hi, v ? v : "");
		exit(2);
	}
	return x;
}

int main(int argc, char **argv)
{
	unsigned mem_mb = 128, runs = 10, warmup = 2, want_zram = 0, markers = 0;
	unsigned long avail[32], sizes[32];
	int navail, nsizes = 0, work[NWORK] = { 1, 1, 1, 1 }, first = 1;
	const char *out = NULL, *size_arg = "all";
	char buf[64], *json = NULL;
	size_t json_len = 0;
	FILE *f, *dest = stdout;
	struct sample *s;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			usage();
			return 0;
		} else if (!strcmp(a, "--zram")) {
			want_zram = 1;
			continue;
		} else if (!strcmp(a, "--markers")) {
			markers = 1;
			continue;
		} else if (!strcmp(a, "-w") && v) {
			char copy[256], *tok, *save;

			memset(work, 0, sizeof(work));
			snprintf(copy, sizeof(copy), "%s", v);
			for (tok = strtok_r(copy, ",", &save); tok;
			     tok = strtok_r(NULL, ",", &save)) {
				int k;

				for (k = 0; k < NWORK && strcmp(tok, workloads[k]); k++)
					;
				if (k == NWORK) {
					fprintf(stderr, "folio_bench: unknown workload '%s'\n", tok);
					return 2;
				}
				work[k] = 1;
			}
		} else if (!strcmp(a, "-s") && v) {
			size_arg = v;
		} else if (!strcmp(a, "-m")) {
			mem_mb = num(a, v, 2, 1 << 20);
		} else if (!strcmp(a, "-r")) {
			runs = num(a, v, 1, MAX_RUNS);
		} else if (!strcmp(a, "-W")) {
			warmup = num(a, v, 0, MAX_RUNS);
		} else if (!strcmp(a, "-o") && v) {
			out = v;
		} else {
			fprintf(stderr, "folio_bench: unknown or incomplete argument '%s'\n", a);
			usage();
			return 2;
		}
		i++;
	}
	page = sysconf(_SC_PAGESIZE);
	if (sysfs_read(THP "/hpage_pmd_size", buf, sizeof(buf)) < 0)
		die(4, "no %s: kernel without THP", THP);
	pmd = atol(buf);
	if (((size_t)mem_mb << 20) % pmd)
		die(2, "-m %u: must be a multiple of the PMD size (%zu kB)",
		    mem_mb, pmd >> 10);
	folio_util_init();
	{
		size_t bytes[32];

		navail = mthp_sizes(bytes, 32);
		for (int k = 0; k < navail; k++)
			avail[k] = bytes[k] >> 10;
	}
	if (!navail)
		die(4, "the kernel offers no anonymous THP size");
	if (!strcmp(size_arg, "all")) {
		memcpy(sizes, avail, navail * sizeof(*sizes));
		nsizes = navail;
	} else {
		char copy[256], *tok, *save;

		snprintf(copy, sizeof(copy), "%s", size_arg);
		for (tok = strtok_r(copy, ",", &save); tok && nsizes < 32;
		     tok = strtok_r(NULL, ",", &save)) {
			unsigned long kb = strtoul(tok, NULL, 10);
			int k;

			for (k = 0; k < navail && avail[k] != kb; k++)
				;
			if (k == navail) {
				fprintf(stderr, "folio_bench: -s %s: %s kB is not an "
					"anonymous mTHP size this kernel offers\n",
					size_arg, tok);
				return 2;
			}
			sizes[nsizes++] = kb;
		}
	}
	if (out && !(dest = fopen(out, "w")))
		die(2, "cannot write %s: %s", out, strerror(errno));
	/* the JSON is written at the end, in one piece, away from progress lines */
	f = open_memstream(&json, &json_len);
	s = calloc(runs + warmup, sizeof(*s));
	if (!f || !s)
		die(4, "out of memory");

	/* the suite's lock, every THP setting saved, restored at exit and on signals */
	if (settings_save())
		die(4, "cannot save the THP settings (root needed)");
	settings_on_signal(zram_down);
	atexit(zram_down);
	facts(f, mem_mb, runs, warmup);
	for (int w = 0; w < NWORK; w++) {
		const char *skip_all = NULL;

		if (!work[w])
			continue;
		if (w == 1 && !swap_active())
			skip_all = want_zram ? zram_up(((size_t)mem_mb << 20) * 3) :
				   "no swap active (give --zram for a temporary zram swap)";
		for (int z = 0; z < nsizes; z++) {
			unsigned long kb = sizes[z];
			char why[160] = "";
			const char *skip = skip_all;
			unsigned n = 0;

			if (!skip && w == 2 && kb << 10 >= pmd)
				skip = "PMD-sized folios are already PMD-mapped: nothing to collapse";
			if (!skip && (kb << 10) > ((size_t)mem_mb << 20))
				skip = "folio larger than the memory size";
			if (skip) {
				fprintf(stderr, "folio_bench: %s %lukB: SKIP %s\n",
					workloads[w], kb, skip);
				result(f, &first, w, kb, s, 0, skip);
				continue;
			}
			if (mthp_only(kb << 10))
				die(4, "cannot enable %lu kB folios (root needed)", kb);
			for (unsigned r = 0, again = 0; r < warmup + runs; r++) {
				if (one_sample(w, kb, (size_t)mem_mb << 20, r,
					       &s[n], why, sizeof(why))) {
					/* MADV_COLLAPSE: EAGAIN is transient (a busy folio) */
					if (errno == EAGAIN && again++ < 10) {
						r--;
						continue;
					}
					break;
				}
				if (r >= warmup)
					n++;
			}
			if (n < runs) {
				fprintf(stderr, "folio_bench: %s %lukB: SKIP %s\n",
					workloads[w], kb, why);
				result(f, &first, w, kb, s, 0, why);
				continue;
			}
			fprintf(stderr, "folio_bench: %s %lukB: %u runs, first %.3f ms\n",
				workloads[w], kb, n, s[0].ns / 1e6);
			result(f, &first, w, kb, s, n, NULL);
		}
	}
	fprintf(f, "\n  ]\n}\n");
	zram_down();
	settings_restore();
	fclose(f);
	fflush(stderr);
	fprintf(dest, "%s%s%s", markers ? "FOLIO_BENCH_JSON_BEGIN\n" : "", json,
		markers ? "FOLIO_BENCH_JSON_END\n" : "");
	return fclose(dest) ? 4 : 0;
}
