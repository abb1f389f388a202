/* Checks the status/error-message helpers every module reports through. */
#include <string.h>

#include "base/status.h"
#include "test.h"

static void test_fail_formats_message(void)
{
    loft_status st;
    loft_status_clear(&st);
    CHECK(st.code == LOFT_OK && st.msg[0] == '\0');
    loft_code c = loft_fail(&st, LOFT_ERR_FORMAT, "%s: field %s: %d", "a.gguf", "n_tensors", 7);
    CHECK(c == LOFT_ERR_FORMAT);
    CHECK(st.code == LOFT_ERR_FORMAT);
    CHECK(strcmp(st.msg, "a.gguf: field n_tensors: 7") == 0);
    CHECK(strcmp(loft_code_name(LOFT_ERR_IO), "io error") == 0);
    CHECK(loft_fail(NULL, LOFT_ERR_ARG, "ignored") == LOFT_ERR_ARG);
}

static void test_long_message_is_truncated(void)
{
    loft_status st;
    char big[4000];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    loft_fail(&st, LOFT_ERR_IO, "%s", big);
    CHECK(strlen(st.msg) == LOFT_STATUS_MSG_MAX - 1);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"status_fail_formats_message", test_fail_formats_message},
        {"status_long_message_is_truncated", test_long_message_is_truncated},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
