/* SPDX-License-Identifier: MIT */
/*
 * slab: read-only views for administration tools (the zone map, the list
 * of epochs) and a GC run on request. Nothing here changes the format.
 *
 * Locks: each epoch's lock, then zlock (the store's lock order); the map is
 * a snapshot, consistent per zone, not across zones.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "slab/slab_int.h"

static uint32_t eslots(struct slab_store *st)
{
	uint32_t n;

	pthread_mutex_lock(&st->elock);
	n = st->neslots;
	pthread_mutex_unlock(&st->elock);
	return n;
}

static uint8_t zone_use(const struct slab_zone *zn)
{
	switch (zn->state) {
	case ZS_FREE:
		return SLAB_ZUSE_FREE;
	case ZS_OPEN:
		return SLAB_ZUSE_OPEN;
	case ZS_META:
		return SLAB_ZUSE_META;
	case ZS_GC:
		return SLAB_ZUSE_GC;
	case ZS_BAD:
		return SLAB_ZUSE_BAD;
	default:
		return SLAB_ZUSE_FULL;
	}
}

int slab_zone_map(struct slab_store *st, struct slab_zone_info *out, uint32_t n)
{
	uint32_t nz = st->nzones;

	if (n < nz)
		return (int)nz;
	pthread_mutex_lock(&st->zlock);
	for (uint32_t z = 0; z < nz; z++) {
		const struct slab_zone *zn = &st->zones[z];
		struct slab_zone_info *o = &out[z];

		memset(o, 0, sizeof(*o));
		o->zone = z;
		o->use = z < st->first_data ? SLAB_ZUSE_META : zone_use(zn);
		o->wp = zn->wp;
		o->live = atomic_load(&zn->live);
		o->owner = SLAB_ZONE_NO_OWNER;
		o->root = zn->root;
	}
	pthread_mutex_unlock(&st->zlock);
	/* Owners: the epochs whose pages the zone holds (per-epoch zone list). */
	for (uint32_t s = 0, ns = eslots(st); s < ns; s++) {
		struct slab_epoch *e = __atomic_load_n(&st->etab[s], __ATOMIC_ACQUIRE);

		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		if (e->state == EPOCH_OPEN) {
			uint32_t id = slab_epoch_id(s, e->gen);

			pthread_mutex_lock(&st->zlock);
			for (uint32_t i = 0; i < e->ez_n; i++) {
				uint32_t z = e->ez[i].zone;

				if (z >= nz || e->ez[i].zgen != st->zones[z].gen ||
				    !e->ez[i].live)
					continue;
				if (!out[z].owners++)
					out[z].owner = id;
			}
			pthread_mutex_unlock(&st->zlock);
		}
		pthread_mutex_unlock(&e->lock);
	}
	return (int)nz;
}

int slab_epoch_list(struct slab_store *st, uint32_t *ids, uint32_t cap)
{
	uint32_t n = 0;

	for (uint32_t s = 0, ns = eslots(st); s < ns; s++) {
		struct slab_epoch *e = __atomic_load_n(&st->etab[s], __ATOMIC_ACQUIRE);

		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		if (e->state == EPOCH_OPEN) {
			if (n < cap)
				ids[n] = slab_epoch_id(s, e->gen);
			n++;
		}
		pthread_mutex_unlock(&e->lock);
	}
	return (int)n;
}
