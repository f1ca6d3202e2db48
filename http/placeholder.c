/* Placeholder until the first module of this folder lands. */
typedef int http_placeholder_unused;
