/* Placeholder until the first module of this folder lands. */
typedef int runtime_placeholder_unused;
