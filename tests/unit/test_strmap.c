/* common/strmap: put, get, replace, remove, growth and iteration. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdio.h>

#include "strmap.h"

static void test_put_get_replace_remove(void **state)
{
    (void)state;
    struct strmap *m = strmap_new();
    int a = 1, b = 2;
    void *old = &a;
    assert_null(strmap_get(m, "friday"));
    assert_int_equal(strmap_put(m, "friday", &a, &old), 0);
    assert_null(old);
    assert_ptr_equal(strmap_get(m, "friday"), &a);
    assert_int_equal(strmap_put(m, "friday", &b, &old), 0);
    assert_ptr_equal(old, &a);
    assert_ptr_equal(strmap_get(m, "friday"), &b);
    assert_int_equal(strmap_size(m), 1);
    assert_ptr_equal(strmap_remove(m, "friday"), &b);
    assert_null(strmap_remove(m, "friday"));
    assert_int_equal(strmap_size(m), 0);
    assert_int_equal(strmap_put(m, "", &a, NULL), 0); /* the empty key is a key */
    assert_ptr_equal(strmap_get(m, ""), &a);
    strmap_free(m);
}

static int count_values(void *ctx, const char *key, void *value)
{
    (void)key;
    *(long *)ctx += *(int *)value;
    return 0;
}

static void test_many_keys(void **state)
{
    (void)state;
    struct strmap *m = strmap_new();
    static int values[20000];
    char key[32];
    for (int i = 0; i < 20000; i++) {
        values[i] = 1;
        snprintf(key, sizeof key, "stream-%d", i);
        assert_int_equal(strmap_put(m, key, &values[i], NULL), 0);
    }
    assert_int_equal(strmap_size(m), 20000);
    for (int i = 0; i < 20000; i += 7) {
        snprintf(key, sizeof key, "stream-%d", i);
        assert_ptr_equal(strmap_get(m, key), &values[i]);
    }
    long total = 0;
    assert_int_equal(strmap_each(m, count_values, &total), 0);
    assert_int_equal(total, 20000);
    for (int i = 0; i < 20000; i += 2) {
        snprintf(key, sizeof key, "stream-%d", i);
        assert_non_null(strmap_remove(m, key));
    }
    assert_int_equal(strmap_size(m), 10000);
    assert_null(strmap_get(m, "stream-0"));
    assert_ptr_equal(strmap_get(m, "stream-1"), &values[1]);
    strmap_free(m);
    strmap_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get_replace_remove),
        cmocka_unit_test(test_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
