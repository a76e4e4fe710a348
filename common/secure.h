/* Constant-time comparison for secrets (passcodes, signatures, token MACs). */
#ifndef STAGEHAND_SECURE_H
#define STAGEHAND_SECURE_H

#include <stddef.h>

/* 1 when a[0..alen) equals b[0..blen), else 0. The time taken does not depend
 * on where the contents differ; it does reveal whether the lengths differ,
 * which is acceptable for the fixed-length MACs and passcodes compared here. */
int secure_equal(const void *a, size_t alen, const void *b, size_t blen);

#endif
