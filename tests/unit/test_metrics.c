/* The eval metrics (src/eval/metrics.c) on hand-made cases whose answers are
 * worked out by hand in the comments. */
#include <math.h>
#include <string.h>

#include "eval/metrics.h"
#include "test.h"

static int lab(const eval_labels *l, const char *s)
{
    return eval_label_of(l, s, strlen(s));
}

static void test_label_normalisation(void)
{
    eval_labels l;
    eval_labels_default(&l);
    CHECK(lab(&l, "Yes") == 0);
    CHECK(lab(&l, "yes, it does.") == 0);
    CHECK(lab(&l, "  **No**. The study found...") == 1);
    CHECK(lab(&l, "A: No. Rationale: ...") == 1);
    CHECK(lab(&l, "Answer: Uncertain") == 2);
    CHECK(lab(&l, "Maybe; the evidence is mixed.") == 2);
    CHECK(lab(&l, "MAYBE") == 2);
    CHECK(lab(&l, "\"Yes\"") == 0);
    CHECK(lab(&l, "\n\n# Yes") == 0);
    /* Only the first word counts. */
    CHECK(lab(&l, "The answer is yes") == -1);
    CHECK(lab(&l, "Yesterday it was") == -1);
    CHECK(lab(&l, "Nope") == -1);
    CHECK(lab(&l, "") == -1);
    CHECK(lab(&l, "...") == -1);
    /* "A" without a colon is a word, not the answer prefix. */
    CHECK(lab(&l, "A yes") == -1);
}

static void test_label_parse(void)
{
    eval_labels l;
    loft_status st;
    CHECK(eval_labels_parse(&l, "Positive,Negative,meh=Negative", &st) == LOFT_OK);
    CHECK(l.n == 2 && l.n_alias == 1);
    CHECK(lab(&l, "negative") == 1 && lab(&l, "Meh.") == 1 && lab(&l, "positive!") == 0);
    CHECK(eval_labels_parse(&l, "Yes", &st) == LOFT_ERR_ARG);
    CHECK(eval_labels_parse(&l, "Yes,No,x=Other", &st) == LOFT_ERR_ARG &&
          strstr(st.msg, "x=Other"));
    CHECK(eval_labels_parse(&l, "Yes,N0", &st) == LOFT_ERR_ARG && strstr(st.msg, "N0"));
    CHECK(eval_labels_parse(&l, "Yes,yes", &st) == LOFT_ERR_ARG);
}

static void test_confusion(void)
{
    /* truth/pred: (Y,Y) (Y,N) (N,N) (N,N) (U,Y) (U,-) (U,U)
     * accuracy 4/7; precision Y = 1/2 (Y predicted for records 1 and 5),
     * N = 2/3, U = 1/1; recall Y = 1/2, N = 2/2, U = 1/3. */
    eval_confusion c;
    eval_confusion_init(&c, 3);
    const int truth[] = {0, 0, 1, 1, 2, 2, 2}, pred[] = {0, 1, 1, 1, 0, -1, 2};
    for (int i = 0; i < 7; i++)
        eval_confusion_add(&c, truth[i], pred[i]);
    CHECK(c.total == 7 && c.correct == 4);
    CHECK(fabs(eval_accuracy(&c) - 4.0 / 7) < 1e-12);
    CHECK(fabs(eval_precision(&c, 0) - 0.5) < 1e-12);
    CHECK(fabs(eval_precision(&c, 1) - 2.0 / 3) < 1e-12);
    CHECK(fabs(eval_precision(&c, 2) - 1.0) < 1e-12);
    CHECK(fabs(eval_recall(&c, 0) - 0.5) < 1e-12);
    CHECK(fabs(eval_recall(&c, 1) - 1.0) < 1e-12);
    CHECK(fabs(eval_recall(&c, 2) - 1.0 / 3) < 1e-12);
    CHECK(c.confusion[2][3] == 1 && c.confusion[2][0] == 1 && c.confusion[0][1] == 1);
    eval_confusion e;
    eval_confusion_init(&e, 3);
    CHECK(eval_accuracy(&e) == 0 && isnan(eval_precision(&e, 0)) && isnan(eval_recall(&e, 1)));
}

static double jac(const char *a, const char *b)
{
    return eval_jaccard(a, strlen(a), b, strlen(b));
}

static void test_jaccard(void)
{
    /* {the, cat, sat} vs {the, cat, ran}: 2 / 4. */
    CHECK(fabs(jac("The cat sat.", "the CAT ran") - 0.5) < 1e-12);
    CHECK(fabs(jac("a b c", "c b a a") - 1.0) < 1e-12);
    CHECK(fabs(jac("a b", "c d") - 0.0) < 1e-12);
    /* Repeats do not count: {yes} vs {yes, it, does} = 1/3. */
    CHECK(fabs(jac("Yes yes YES!", "yes, it does") - 1.0 / 3) < 1e-12);
    CHECK(fabs(jac("", "") - 1.0) < 1e-12);
    CHECK(fabs(jac("...", "word") - 0.0) < 1e-12);
    /* Non-ASCII bytes belong to words: {café, naïve} vs {café} = 1/2. */
    CHECK(fabs(jac("café naïve", "Café") - 0.5) < 1e-12);
    /* Digits are word characters: {p, 0, 05} vs {p, 0, 01} = 2/4. */
    CHECK(fabs(jac("p<0.05", "p < 0.01") - 0.5) < 1e-12);
}

static void test_cosine(void)
{
    const float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {3, 4, 0}, z[3] = {0, 0, 0};
    CHECK(fabs(eval_cosine(a, a, 3) - 1) < 1e-12);
    CHECK(fabs(eval_cosine(a, b, 3)) < 1e-12);
    CHECK(fabs(eval_cosine(a, c, 3) - 0.6) < 1e-9);
    CHECK(fabs(eval_cosine(b, c, 3) - 0.8) < 1e-9);
    CHECK(eval_cosine(a, z, 3) == 0);
}

static int jp(const char *s)
{
    return eval_judge_parse(s, strlen(s));
}

static void test_judge(void)
{
    CHECK(jp("1") == 1 && jp("2") == 2 && jp("Answer 2 is better") == 2);
    CHECK(jp("**1**") == 1 && jp("First.") == 1 && jp("second") == 2);
    CHECK(jp("tie") == 0 && jp("12") == 0 && jp("") == 0 && jp("Both are fine") == 0);
    /* A wins only when the first reading picks position 1 (A) and the
     * swapped reading picks position 2 (A again). */
    CHECK(eval_judge_combine(1, 2) == EVAL_A);
    CHECK(eval_judge_combine(2, 1) == EVAL_B);
    CHECK(eval_judge_combine(1, 1) == EVAL_TIE); /* position bias */
    CHECK(eval_judge_combine(2, 2) == EVAL_TIE);
    CHECK(eval_judge_combine(0, 2) == EVAL_TIE && eval_judge_combine(1, 0) == EVAL_TIE);
}

int main(int argc, char **argv)
{
    static const test_case cases[] = {
        {"label_normalisation", test_label_normalisation},
        {"label_parse", test_label_parse},
        {"confusion", test_confusion},
        {"jaccard", test_jaccard},
        {"cosine", test_cosine},
        {"judge", test_judge},
    };
    return test_main(argc, argv, cases, TEST_COUNT(cases));
}
