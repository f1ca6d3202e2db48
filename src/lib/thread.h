/* thread: the daemon's few helper threads (they never run its code on
 * its loop's data, and never its signal handlers). */
#ifndef CAPSTAN_LIB_THREAD_H
#define CAPSTAN_LIB_THREAD_H

/* Runs @fn(@arg) on a new detached thread with a 64 KiB stack and every
 * signal blocked. Returns 0, or an errno value (nothing started). */
int thread_start_detached(void *(*fn)(void *), void *arg);

#endif
