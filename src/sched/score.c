/* The scheduler's scores: kube-scheduler's LeastAllocated strategy of
 * NodeResourcesFit and a spreading of pods that share a controller owner
 * (what its default PodTopologySpread constraint on hostname does for a
 * ReplicaSet's pods, simplified to counts per node). */
#include "src/sched/sched.h"

/* ((capacity - requested) * 100) / capacity; 0 when the node has none of
 * the resource or the pod would overflow it. */
static int64_t least_requested(int64_t requested, int64_t capacity)
{
	if (capacity <= 0 || requested > capacity)
		return 0;
	/* Split to stay inside int64 for large memory capacities. */
	int64_t free_ = capacity - requested;
	if (free_ > INT64_MAX / SCHED_MAX_SCORE)
		return (free_ / (capacity / SCHED_MAX_SCORE + 1));
	return free_ * SCHED_MAX_SCORE / capacity;
}

int64_t sched__score_least_allocated(const struct sched_pod_spec *p, const struct sched_node *n)
{
	int64_t cpu = least_requested(n->used_nz.cpu + p->req_nz.cpu, n->spec.alloc.cpu);
	int64_t mem = least_requested(n->used_nz.mem + p->req_nz.mem, n->spec.alloc.mem);
	return (cpu + mem) / 2;
}

int64_t sched__score_spread(uint32_t count, uint32_t max)
{
	if (max == 0 || count >= max)
		return max == 0 ? SCHED_MAX_SCORE : 0;
	return (int64_t)(max - count) * SCHED_MAX_SCORE / max;
}
