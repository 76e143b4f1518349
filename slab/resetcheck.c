// SPDX-License-Identifier: MIT
/*
 * Debug check of zone resets (st->check_resets, from TSLAB_CHECK_RESETS):
 * a data zone is reset once its live bytes reach zero, so a single
 * miscounted record (a location killed twice, a page counted late) turns
 * into a reset under a live record, which no test sees until a remount
 * misses the file. Before each reset this walks every location the store
 * keeps — slot heads and tombstones, epoch markers, chunk tables, extents
 * chunk maps, drop entries — under each epoch's lock in turn and reports
 * any that still lies in the zone. O(objects) per reset: tests only.
 */
#include <syslog.h>

#include "slab/slab_int.h"

static bool in_zone(struct slab_loc l, uint32_t z)
{
	return l.zone == z;
}

static bool chunks_in_zone(const struct slab_chunks *ch, uint32_t z)
{
	for (uint32_t i = 0; ch && i < ch->n; i++)
		if (in_zone(ch->loc[i], z))
			return true;
	return false;
}

static bool fmap_in_zone(struct slab_fmap *fm, uint32_t z)
{
	struct slab_fent *fe;

	if (chunks_in_zone(fm->legacy, z))
		return true;
	for (uint64_t i = 0; (fe = slab_fmap_next(fm, &i, false)); i++)
		if (in_zone(fe->loc, z))
			return true;
	return false;
}

/* Slot of E (locked) naming a record in Z, or UINT32_MAX. */
static uint32_t epoch_named_slot(struct slab_epoch *e, uint32_t z)
{
	tslab_mutex_assert_held(&e->lock);

	for (uint32_t i = 0; e->state == EPOCH_OPEN && i < e->nslots; i++) {
		struct slab_slot *s = slab_slot_get(e, i);
		struct slab_fmap *fm = slab_slot_fmap(s);

		if (in_zone(s->loc, z) || (fm && fmap_in_zone(fm, z)) ||
		    (!fm && chunks_in_zone(slab_slot_chunks(s), z)))
			return i;
	}
	return UINT32_MAX;
}

bool slab_zone_still_named(struct slab_store *st, uint32_t z)
{
	for (uint32_t i = 0; i < st->neslots; i++) {
		struct slab_epoch *e = st->etab[i];
		uint32_t slot;
		bool drop = false;

		if (!e)
			continue;
		pthread_mutex_lock(&e->lock);
		slot = epoch_named_slot(e, z);
		for (uint32_t d = 0; i == 0 && d < st->ndrops && !drop; d++)
			drop = in_zone(st->drops[d].loc, z);
		pthread_mutex_unlock(&e->lock);
		if (slot == UINT32_MAX && !drop)
			continue;
		syslog(LOG_CRIT,
		       "tslabfs: slab: BUG: zone %u has no live bytes but %s of epoch "
		       "slot %u still names a record there; zone not reset",
		       z, drop ? "a drop entry" : "an object", i);
		return true;
	}
	return false;
}
