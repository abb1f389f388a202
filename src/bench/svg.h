/*
 * svg.h - horizontal bar charts as inline SVG (no scripts, no external
 * files), for the HTML benchmark report.
 */
#ifndef LOFT_BENCH_SVG_H
#define LOFT_BENCH_SVG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

typedef struct svg_bar {
    const char *label;    /* left of the bar, e.g. the device */
    const char *sublabel; /* under the label, e.g. quantization and threads */
    const char *color;    /* CSS color of the bar */
    double value;         /* bar length */
    double lo, hi;        /* whisker range; lo > hi (or NaN) for none */
    const char *note;     /* shown instead of a bar when not NULL ("OOM ...") */
} svg_bar;

/* Writes one <svg> element: a title, n bars scaled to the largest value or
 * whisker, an axis with round tick values, each bar's value printed after
 * it with `decimals` digits and `unit`. Text is XML-escaped. */
void svg_bar_chart(FILE *f, const char *title, const char *unit, int decimals, const svg_bar *bars,
                   size_t n, int width);

/* Writes s with &, <, >, " and ' escaped for XML/HTML text and attributes. */
void svg_escape(FILE *f, const char *s);

/* A step for about `target` ticks up to max: 1, 2 or 5 times a power of ten. */
double svg_nice_step(double max, int target);

#endif
