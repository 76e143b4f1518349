/* SPDX-License-Identifier: MIT */
/*
 * Held-lock assertions, in the spirit of the kernel's lockdep_assert_held():
 * a function whose contract says "caller holds L" states it in code as well.
 * Active when NDEBUG is not defined (meson's default buildtypes, so every
 * test run checks them); they compile to nothing otherwise.
 *
 * They read the owner that glibc's NPTL records in every mutex (__owner,
 * the owning thread's TID, for the default mutex type as well) and the
 * writer TID of an rwlock (__cur_writer). Read-side ownership is not
 * recorded by glibc, so tslab_rwlock_assert_held() checks only that the
 * lock is held in some mode. The predicates tslab_mutex_held() and
 * tslab_rwlock_wrheld() exist only in such builds: use them inside
 * assert() alone.
 */
#ifndef TSLAB_LOCK_H
#define TSLAB_LOCK_H

#include <pthread.h>
#include <stdbool.h>

#ifndef NDEBUG
#include <assert.h>
#include <unistd.h>

#if !defined(__GLIBC__)
#error "held-lock assertions read glibc's pthread internals; build with -DNDEBUG"
#endif

/* Readers are counted above bit 3 of __readers (glibc's READER_SHIFT). */
#define TSLAB_RWLOCK_READER_SHIFT 3

/* Predicates, for rules of the form "L1 held, or else L2 held". */
static inline bool tslab_mutex_held(pthread_mutex_t *m)
{
	return m->__data.__owner == gettid();
}

static inline bool tslab_rwlock_wrheld(pthread_rwlock_t *l)
{
	return l->__data.__cur_writer == gettid();
}

static inline void tslab_mutex_assert_held(pthread_mutex_t *m)
{
	assert(tslab_mutex_held(m));
}

/* The calling thread does not hold M (e.g. before a device call). */
static inline void tslab_mutex_assert_not_held(pthread_mutex_t *m)
{
	assert(m->__data.__owner != gettid());
}

static inline void tslab_rwlock_assert_wrheld(pthread_rwlock_t *l)
{
	assert(tslab_rwlock_wrheld(l));
}

static inline void tslab_rwlock_assert_held(pthread_rwlock_t *l)
{
	assert(l->__data.__cur_writer == gettid() ||
	       (l->__data.__readers >> TSLAB_RWLOCK_READER_SHIFT) != 0);
}
#else
static inline void tslab_mutex_assert_held(pthread_mutex_t *m)
{
	(void)m;
}

static inline void tslab_mutex_assert_not_held(pthread_mutex_t *m)
{
	(void)m;
}

static inline void tslab_rwlock_assert_wrheld(pthread_rwlock_t *l)
{
	(void)l;
}

static inline void tslab_rwlock_assert_held(pthread_rwlock_t *l)
{
	(void)l;
}
#endif

#endif
