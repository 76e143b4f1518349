/* SPDX-License-Identifier: MIT */
/* tslabctl: parse the control texts into a view and print it as text
 * tables (a bar per zone) or JSON. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "tools/ctl.h"

static void unescape(char *s)
{
	char *d = s;

	for (; *s; s++) {
		if (*s == '\\' && s[1]) {
			s++;
			*d++ = *s == 't' ? '\t' : *s == 'n' ? '\n' : *s;
		} else {
			*d++ = *s;
		}
	}
	*d = 0;
}

static int parse_epochs(char *text, struct ctl_view *v)
{
	size_t cap = 0;
	char *save = NULL;

	for (char *line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		struct ctl_epoch e = {0};
		char path[2048], due[32];

		if (!strncmp(line, "id\t", 3))
			continue;
		if (sscanf(line,
		           "%" SCNu32 "\t%2047[^\t]\t%" SCNu64 "\t%" SCNu64 "\t%" SCNu32
		           "\t%" SCNu64 "\t%" SCNd64 "\t%" SCNd64 "\t%d\t%31s",
		           &e.id, path, &e.files, &e.bytes, &e.zones, &e.pages,
		           &e.created, &e.last_write, &e.sealed, due) != 10)
			return -EPROTO;
		unescape(path);
		snprintf(e.path, sizeof(e.path), "%s", path);
		snprintf(e.due, sizeof(e.due), "%s", due);
		if (v->ne == cap) {
			struct ctl_epoch *p =
			    realloc(v->e, (cap = cap ? cap * 2 : 64) * sizeof(*p));

			if (!p)
				return -ENOMEM;
			v->e = p;
		}
		v->e[v->ne++] = e;
	}
	return 0;
}

static int parse_zones(char *text, struct ctl_view *v)
{
	char *save = NULL, *line = strtok_r(text, "\n", &save);
	size_t n;

	if (!line ||
	    sscanf(line, "zones %zu capacity %" SCNu64 " max_active %u max_open %u", &n,
	           &v->capacity, &v->max_active, &v->max_open) != 4)
		return -EPROTO;
	v->z = calloc(n ? n : 1, sizeof(*v->z));
	if (!v->z)
		return -ENOMEM;
	while ((line = strtok_r(NULL, "\n", &save)) && v->nz < n) {
		struct ctl_zone *z = &v->z[v->nz];

		if (sscanf(line,
		           "%" SCNu32 "\t%15s\t%" SCNu64 "\t%23s\t%15s\t%" SCNu32
		           "\t%" SCNu64,
		           &z->zone, z->cond, &z->wp, z->use, z->owner, &z->owners,
		           &z->live) != 7)
			return -EPROTO;
		v->nz++;
	}
	return v->nz == n ? 0 : -EPROTO;
}

int ctl_parse(const struct ctl_texts *t, struct ctl_view *v)
{
	char *e = strdup(t->epochs), *z = strdup(t->zones);
	int err = e && z ? 0 : -ENOMEM;

	memset(v, 0, sizeof(*v));
	v->mounted = t->mounted;
	if (!err)
		err = parse_epochs(e, v);
	if (!err)
		err = parse_zones(z, v);
	if (!err) {
		v->gc = strdup(t->gc);
		if (!v->gc)
			err = -ENOMEM;
	}
	free(e);
	free(z);
	if (err)
		fprintf(stderr, "tslabctl: %s\n",
		        err == -EPROTO
		            ? "unexpected control text (daemon of another version?)"
		            : strerror(-err));
	return err;
}

void ctl_view_free(struct ctl_view *v)
{
	free(v->z);
	free(v->e);
	free(v->gc);
}

static void when(int64_t s, char *out, size_t cap)
{
	struct tm tm;
	time_t t = (time_t)s;

	if (s <= 0 || !gmtime_r(&t, &tm))
		snprintf(out, cap, "-");
	else
		strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static const struct ctl_epoch *epoch_by_id(const struct ctl_view *v, const char *id)
{
	char *end;
	unsigned long n = strtoul(id, &end, 10);

	if (*end || end == id)
		return NULL;
	for (size_t i = 0; i < v->ne; i++)
		if (v->e[i].id == n)
			return &v->e[i];
	return NULL;
}

static void human(uint64_t b, char *out, size_t cap)
{
	const char *u = "KMGT";
	double x = (double)b;
	int i = -1;

	if (b < 1024) {
		snprintf(out, cap, "%" PRIu64 "B", b);
		return;
	}
	while (x >= 1024 && i < 3) {
		x /= 1024;
		i++;
	}
	snprintf(out, cap, "%.1f%c", x, u[i]);
}

void ctl_print_stat(const struct ctl_view *v, bool json)
{
	uint64_t files = 0, bytes = 0;

	if (json) {
		printf("{\"mounted\":%s,\"epochs\":[", v->mounted ? "true" : "false");
		for (size_t i = 0; i < v->ne; i++) {
			const struct ctl_epoch *e = &v->e[i];

			printf("%s{\"id\":%" PRIu32 ",\"path\":", i ? "," : "", e->id);
			json_str(e->path);
			printf(",\"files\":%" PRIu64 ",\"bytes\":%" PRIu64
			       ",\"zones\":%" PRIu32 ",\"pages\":%" PRIu64
			       ",\"created\":%" PRId64 ",\"last_write\":%" PRId64
			       ",\"sealed\":%s,\"retention_due\":%s}",
			       e->files, e->bytes, e->zones, e->pages, e->created,
			       e->last_write, e->sealed ? "true" : "false",
			       strcmp(e->due, "-") ? e->due : "null");
		}
		printf("]}\n");
		return;
	}
	printf("%-24s %10s %10s %5s %-20s %-20s %-6s %s\n", "EPOCH", "FILES", "BYTES",
	       "ZONES", "CREATED", "LAST WRITE", "SEALED", "RETENTION DUE");
	for (size_t i = 0; i < v->ne; i++) {
		const struct ctl_epoch *e = &v->e[i];
		char c[32], w[32], d[32], hb[16];

		when(e->created, c, sizeof(c));
		when(e->last_write, w, sizeof(w));
		if (strcmp(e->due, "-"))
			when(strtoll(e->due, NULL, 10), d, sizeof(d));
		else
			snprintf(d, sizeof(d), "-");
		human(e->bytes, hb, sizeof(hb));
		printf("%-24s %10" PRIu64 " %10s %5" PRIu32 " %-20s %-20s %-6s %s\n",
		       e->path, e->files, hb, e->zones, c, w, e->sealed ? "yes" : "no",
		       d);
		files += e->files;
		bytes += e->bytes;
	}
	char hb[16];

	human(bytes, hb, sizeof(hb));
	printf("%zu epochs (root included), %" PRIu64 " objects, %s live (every depth)\n",
	       v->ne, files, hb);
}

#define BAR 32

/* [####....    ]: live, dead (written, no longer live), unwritten. */
static void bar(const struct ctl_zone *z, uint64_t cap, bool color)
{
	uint64_t wp = z->wp < cap ? z->wp : cap, live = z->live < wp ? z->live : wp;
	unsigned nl = cap ? (unsigned)((live * BAR + cap - 1) / cap) : 0;
	unsigned nw = cap ? (unsigned)((wp * BAR + cap - 1) / cap) : 0;

	if (nw > BAR)
		nw = BAR;
	if (nl > nw)
		nl = nw;
	putchar('[');
	if (color && nl)
		fputs("\033[32m", stdout);
	for (unsigned i = 0; i < BAR; i++) {
		if (color && i == nl && nl < nw)
			fputs("\033[31m", stdout);
		if (color && i == nw)
			fputs("\033[0m", stdout);
		putchar(i < nl ? '#' : i < nw ? '.' : ' ');
	}
	if (color)
		fputs("\033[0m", stdout);
	putchar(']');
}

void ctl_print_zones(const struct ctl_view *v, bool json, bool color)
{
	uint32_t open = 0;

	for (size_t i = 0; i < v->nz; i++)
		open += !strcmp(v->z[i].cond, "imp_open") ||
		        !strcmp(v->z[i].cond, "exp_open") ||
		        !strcmp(v->z[i].cond, "closed");
	if (json) {
		printf("{\"capacity\":%" PRIu64
		       ",\"max_active\":%u,\"max_open\":%u,\"active\":%u,"
		       "\"zones\":[",
		       v->capacity, v->max_active, v->max_open, open);
		for (size_t i = 0; i < v->nz; i++) {
			const struct ctl_zone *z = &v->z[i];
			const struct ctl_epoch *e = epoch_by_id(v, z->owner);

			printf("%s{\"zone\":%" PRIu32 ",\"cond\":\"%s\",\"wp\":%" PRIu64
			       ",\"use\":\"%s\",\"owner\":%s,\"owner_path\":",
			       i ? "," : "", z->zone, z->cond, z->wp, z->use,
			       strcmp(z->owner, "-") ? z->owner : "null");
			if (e)
				json_str(e->path);
			else
				printf("null");
			printf(",\"owners\":%" PRIu32 ",\"live\":%" PRIu64
			       ",\"dead\":%" PRIu64 "}",
			       z->owners, z->live, z->wp > z->live ? z->wp - z->live : 0);
		}
		printf("]}\n");
		return;
	}
	char hc[16];

	human(v->capacity, hc, sizeof(hc));
	printf(
	    "%zu zones of %s; active (open or closed) %u of max %u; bar: # live, . dead, "
	    "blank unwritten\n",
	    v->nz, hc, open, v->max_active);
	printf("%4s %-8s %-9s %8s %8s %8s  %-*s  %s\n", "ZONE", "COND", "USE", "WP",
	       "LIVE", "DEAD", BAR + 2, "", "OWNER");
	for (size_t i = 0; i < v->nz; i++) {
		const struct ctl_zone *z = &v->z[i];
		const struct ctl_epoch *e = epoch_by_id(v, z->owner);
		char hw[16], hl[16], hd[16];

		human(z->wp, hw, sizeof(hw));
		human(z->live, hl, sizeof(hl));
		human(z->wp > z->live ? z->wp - z->live : 0, hd, sizeof(hd));
		printf("%4" PRIu32 " %-8s %-9s %8s %8s %8s  ", z->zone, z->cond, z->use,
		       hw, hl, hd);
		bar(z, v->capacity, color);
		if (e)
			printf("  %s%s\n", e->path, z->owners > 1 ? " (+ others)" : "");
		else
			printf("  %s\n",
			       !strcmp(z->use, "meta")
			           ? "(metadata: superblock, journal or checkpoint)"
			           : "-");
	}
}

void ctl_print_gc(const struct ctl_view *v, bool json)
{
	char key[64];
	unsigned long long val;
	const char *p = v->gc;
	int n, first = 1;

	if (!json) {
		fputs(v->gc, stdout);
		return;
	}
	putchar('{');
	while (sscanf(p, "%63s %llu\n%n", key, &val, &n) == 2) {
		printf("%s\"%s\":%llu", first ? "" : ",", key, val);
		first = 0;
		p += n;
	}
	printf("}\n");
}
