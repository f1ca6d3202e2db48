/* thread: the daemon's few helper threads. */
#include <errno.h>
#include <pthread.h>
#include <signal.h>

#include "src/lib/thread.h"

int thread_start_detached(void *(*fn)(void *), void *arg)
{
	pthread_attr_t attr;
	pthread_t t;
	sigset_t all, old;
	int rv;

	rv = pthread_attr_init(&attr);
	if (rv != 0)
		return rv;
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 64u * 1024u);
	/* The thread inherits this mask: no signal handler runs there. */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rv = pthread_create(&t, &attr, fn, arg);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	return rv;
}
