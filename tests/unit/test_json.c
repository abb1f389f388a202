/* Checks the JSON reader (used for datasets, results and reports) and writer. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/json.h"
#include "test.h"

static json_doc *parse_ok(const char *text)
{
    json_doc *doc = NULL;
    loft_status st;
    if (json_parse(&doc, text, strlen(text), "t.json", &st) != LOFT_OK) {
        fprintf(stderr, "    unexpected parse error: %s\n", st.msg);
        return NULL;
    }
    return doc;
}

static void test_parse_values(void)
{
    json_doc *doc = parse_ok(" {\"a\": [1, -2.5e3, true, false, null], \"b\": {\"c\": \"x\\ny\"},"
                             " \"u\": \"\\u00e9\\ud83d\\ude00\", \"e\": [], \"o\": {}} ");
    CHECK(doc);
    const json_value *root = json_doc_root(doc);
    CHECK(root->kind == JSON_OBJECT && root->n == 5);
    const json_value *a = json_get(root, "a");
    CHECK(a && a->kind == JSON_ARRAY && a->n == 5);
    CHECK(a->items[0].kind == JSON_NUMBER && a->items[0].number == 1.0);
    CHECK(a->items[1].number == -2500.0);
    CHECK(a->items[2].kind == JSON_BOOL && a->items[2].boolean);
    CHECK(a->items[3].kind == JSON_BOOL && !a->items[3].boolean);
    CHECK(a->items[4].kind == JSON_NULL);
    CHECK(strcmp(json_get_str(json_get(root, "b"), "c"), "x\ny") == 0);
    const char *u = json_get_str(root, "u");
    CHECK(u && strcmp(u, "\xc3\xa9\xf0\x9f\x98\x80") == 0);
    CHECK(json_get(root, "e")->n == 0 && json_get(root, "o")->kind == JSON_OBJECT);
    CHECK(json_get(root, "missing") == NULL);
    json_doc_free(doc);
}

static void test_nul_in_string(void)
{
    json_doc *doc = parse_ok("\"a\\u0000b\"");
    CHECK(doc);
    const json_value *v = json_doc_root(doc);
    CHECK(v->kind == JSON_STRING && v->str_len == 3 && v->str[1] == '\0' && v->str[2] == 'b');
    json_doc_free(doc);
}

static void test_rejects_malformed(void)
{
    static const char *const bad[] = {
        "",        "{",         "[1,]",     "{\"a\" 1}",   "{\"a\":1,}", "\"abc",
        "tru",     "01",        "1.",       "-",           "1e",         "\"\\x\"",
        "\"\\ud800\"", "[1] 2",  "{1:2}",    "\"a\tb\"",    "nul",        "[\"\\u12\"]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_doc *doc = NULL;
        loft_status st;
        loft_code rc = json_parse(&doc, bad[i], strlen(bad[i]), "bad.json", &st);
        CHECKF(rc == LOFT_ERR_FORMAT && doc == NULL, "accepted malformed input '%s'", bad[i]);
        CHECKF(strncmp(st.msg, "bad.json:", 9) == 0, "message lacks the name: %s", st.msg);
    }
}

static void test_error_position(void)
{
    json_doc *doc = NULL;
    loft_status st;
    const char *text = "{\n  \"a\": 1,\n  \"b\" 2\n}";
    CHECK(json_parse(&doc, text, strlen(text), "pos.json", &st) == LOFT_ERR_FORMAT);
    CHECKF(strstr(st.msg, "pos.json:3:") != NULL, "message: %s", st.msg);
}

static void test_depth_limit(void)
{
    size_t n = JSON_MAX_DEPTH * 4;
    char *text = malloc(2 * n + 1);
    CHECK(text);
    memset(text, '[', n);
    memset(text + n, ']', n);
    text[2 * n] = '\0';
    json_doc *doc = NULL;
    loft_status st;
    loft_code rc = json_parse(&doc, text, 2 * n, "deep.json", &st);
    free(text);
    CHECK(rc == LOFT_ERR_FORMAT && strstr(st.msg, "nesting too deep"));
}

static void test_bounded_by_length(void)
{
    /* The parser must stop at len even when the buffer continues. */
    const char *text = "[1,2]garbage";
    json_doc *doc = NULL;
    loft_status st;
    CHECK(json_parse(&doc, text, 5, "len.json", &st) == LOFT_OK);
    CHECK(json_doc_root(doc)->n == 2);
    json_doc_free(doc);
}

static void test_writer_round_trip(void)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    CHECK(f);
    const char s[] = "q\"b\\n\n\t\x01\xc3\xa9";
    fputs("[", f);
    json_write_str(f, s, sizeof s - 1);
    fputs(",", f);
    json_write_num(f, 0.1);
    fputs(",", f);
    json_write_num(f, 42);
    fputs(",", f);
    json_write_num(f, NAN);
    fputs("]", f);
    fclose(f);
    json_doc *doc = NULL;
    loft_status st;
    loft_code rc = json_parse(&doc, buf, len, "w.json", &st);
    free(buf);
    CHECK(rc == LOFT_OK);
    const json_value *r = json_doc_root(doc);
    CHECK(r->n == 4);
    CHECK(r->items[0].str_len == sizeof s - 1 && memcmp(r->items[0].str, s, sizeof s - 1) == 0);
    CHECK(r->items[1].number == 0.1);
    CHECK(r->items[2].number == 42.0);
    CHECK(r->items[3].kind == JSON_NULL);
    json_doc_free(doc);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"json_parse_values", test_parse_values},
        {"json_nul_in_string", test_nul_in_string},
        {"json_rejects_malformed", test_rejects_malformed},
        {"json_error_position", test_error_position},
        {"json_depth_limit", test_depth_limit},
        {"json_bounded_by_length", test_bounded_by_length},
        {"json_writer_round_trip", test_writer_round_trip},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
