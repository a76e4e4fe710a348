/* The schema files of schemas/, embedded at build time by tools/embed-schemas.sh. */
#ifndef STAGEHAND_SCHEMA_SOURCES_H
#define STAGEHAND_SCHEMA_SOURCES_H

#include <stddef.h>

struct schema_source {
    const char *name; /* file name without ".json", e.g. "envelope", "hand.raised" */
    const char *text; /* the file's content */
};

extern const struct schema_source schema_sources[];
extern const size_t schema_sources_count;

#endif
