/* SPDX-License-Identifier: MIT */
/* Helpers shared by the slab device tests: emulated images in $TMPDIR and
 * deterministic, self-identifying object contents. */
#ifndef TSLAB_SLAB_TEST_UTIL_H
#define TSLAB_SLAB_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "slab/slab.h"

static inline int tu_mkimg(char *path, size_t n, uint32_t nzones, uint64_t zsize,
                           uint32_t max_active)
{
	const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	struct zns_emul_params p = {.lba_size = 4096,
	                            .zone_size = zsize,
	                            .nr_zones = nzones,
	                            .size = (uint64_t)(nzones + 2) * zsize + (4u << 20),
	                            .max_open = max_active,
	                            .max_active = max_active};
	int fd;

	snprintf(path, n, "%s/slabtest-XXXXXX", tmp);
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	return zns_emul_create(path, &p);
}

static inline uint64_t tu_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdull;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ull;
	x ^= x >> 33;
	return x;
}

/* Length of version VER of object ID: 8..MAXLEN bytes. */
static inline uint32_t tu_len(uint32_t id, uint32_t ver, uint32_t maxlen)
{
	return 8 + (uint32_t)(tu_mix(((uint64_t)id << 32) | ver) % (maxlen - 7));
}

/* Contents: le32 id, le32 ver, then bytes derived from both. */
static inline void tu_fill(uint8_t *b, uint32_t len, uint32_t id, uint32_t ver)
{
	uint64_t s = tu_mix(((uint64_t)ver << 32) | id);

	memcpy(b, &id, 4);
	memcpy(b + 4, &ver, 4);
	for (uint32_t i = 8; i < len; i++) {
		if ((i & 7) == 0)
			s = tu_mix(s + i);
		b[i] = (uint8_t)(s >> ((i & 7) * 8));
	}
}

/* 0 if B (LEN bytes) is a complete version of ID (stored in *ver). */
static inline int tu_check(const uint8_t *b, uint32_t len, uint32_t id, uint32_t maxlen,
                           uint32_t *ver)
{
	uint32_t gid, gver;
	static uint8_t ref[1 << 20];

	if (len < 8)
		return -1;
	memcpy(&gid, b, 4);
	memcpy(&gver, b + 4, 4);
	if (gid != id || tu_len(id, gver, maxlen) != len || len > sizeof(ref))
		return -1;
	tu_fill(ref, len, id, gver);
	if (memcmp(ref, b, len))
		return -1;
	*ver = gver;
	return 0;
}

#endif
