/* Placeholder until the first module of this folder lands. */
typedef int raft_placeholder_unused;
