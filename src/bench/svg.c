#include "bench/svg.h"

#include <math.h>

void svg_escape(FILE *f, const char *s)
{
    for (; s && *s; s++) {
        switch (*s) {
        case '&':
            fputs("&amp;", f);
            break;
        case '<':
            fputs("&lt;", f);
            break;
        case '>':
            fputs("&gt;", f);
            break;
        case '"':
            fputs("&quot;", f);
            break;
        case '\'':
            fputs("&#39;", f);
            break;
        default:
            fputc(*s, f);
        }
    }
}

double svg_nice_step(double max, int target)
{
    if (!(max > 0) || target < 1) return 1.0;
    double raw = max / target;
    double p = pow(10.0, floor(log10(raw)));
    double m = raw / p;
    return (m <= 1.0 ? 1.0 : m <= 2.0 ? 2.0 : m <= 5.0 ? 5.0 : 10.0) * p;
}

static bool has_whisker(const svg_bar *b)
{
    return !isnan(b->lo) && !isnan(b->hi) && b->hi >= b->lo;
}

void svg_bar_chart(FILE *f, const char *title, const char *unit, int decimals, const svg_bar *bars,
                   size_t n, int width)
{
    const int label_w = 230, right_pad = 120, top = 44, row_h = 40, bar_h = 22, axis_h = 30;
    if (width < label_w + right_pad + 100) width = label_w + right_pad + 100;
    const int plot_w = width - label_w - right_pad;
    const int height = top + (int)n * row_h + axis_h;
    double max = 0;
    for (size_t i = 0; i < n; i++) {
        if (bars[i].note) continue;
        if (bars[i].value > max) max = bars[i].value;
        if (has_whisker(&bars[i]) && bars[i].hi > max) max = bars[i].hi;
    }
    double step = svg_nice_step(max, 5);
    double axis_max = max > 0 ? ceil(max / step) * step : 1.0;

    fprintf(f,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" "
            "viewBox=\"0 0 %d %d\" role=\"img\" font-family=\"system-ui, sans-serif\">\n",
            width, height, width, height);
    fputs("<title>", f);
    svg_escape(f, title);
    fputs("</title>\n", f);
    fprintf(f, "<text x=\"0\" y=\"22\" font-size=\"16\" font-weight=\"600\" fill=\"#222\">");
    svg_escape(f, title);
    fputs("</text>\n", f);
    /* Grid lines and tick labels. */
    for (double v = 0; v <= axis_max * (1 + 1e-9); v += step) {
        double x = label_w + plot_w * v / axis_max;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\" stroke=\"#e3e3e3\"/>\n", x,
                top - 6, x, top + (int)n * row_h);
        fprintf(f,
                "<text x=\"%.1f\" y=\"%d\" font-size=\"11\" fill=\"#666\" "
                "text-anchor=\"middle\">%g</text>\n",
                x, top + (int)n * row_h + 16, v);
    }
    fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#666\" text-anchor=\"end\">",
            label_w + plot_w, top + (int)n * row_h + 28);
    svg_escape(f, unit);
    fputs("</text>\n", f);
    for (size_t i = 0; i < n; i++) {
        const svg_bar *b = &bars[i];
        int y = top + (int)i * row_h;
        fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"13\" fill=\"#222\" text-anchor=\"end\">",
                label_w - 10, y + 13);
        svg_escape(f, b->label);
        fputs("</text>\n", f);
        if (b->sublabel) {
            fprintf(f,
                    "<text x=\"%d\" y=\"%d\" font-size=\"11\" fill=\"#666\" "
                    "text-anchor=\"end\">",
                    label_w - 10, y + 27);
            svg_escape(f, b->sublabel);
            fputs("</text>\n", f);
        }
        if (b->note) {
            fprintf(f,
                    "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"#f6f6f6\" "
                    "stroke=\"#c44\" stroke-dasharray=\"4 3\"/>\n",
                    label_w, y + 2, plot_w, bar_h);
            fprintf(f, "<text x=\"%d\" y=\"%d\" font-size=\"12\" fill=\"#c44\">", label_w + 8,
                    y + 2 + bar_h / 2 + 4);
            svg_escape(f, b->note);
            fputs("</text>\n", f);
            continue;
        }
        double w = plot_w * (b->value > 0 ? b->value : 0) / axis_max;
        fprintf(f, "<rect x=\"%d\" y=\"%d\" width=\"%.1f\" height=\"%d\" rx=\"3\" fill=\"%s\"/>\n",
                label_w, y + 2, w, bar_h, b->color ? b->color : "#4878d0");
        double end = w;
        if (has_whisker(b)) {
            double x0 = label_w + plot_w * b->lo / axis_max,
                   x1 = label_w + plot_w * b->hi / axis_max;
            double yc = y + 2 + bar_h / 2.0;
            fprintf(f,
                    "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\" stroke=\"#333\" "
                    "stroke-width=\"1.5\" fill=\"none\"/>\n",
                    x0, yc, x1, x0, yc - 6, yc + 6, x1, yc - 6, yc + 6);
            if (x1 - label_w > end) end = x1 - label_w;
        }
        fprintf(f, "<text x=\"%.1f\" y=\"%d\" font-size=\"12\" fill=\"#222\">%.*f</text>\n",
                label_w + end + 6, y + 2 + bar_h / 2 + 4, decimals, b->value);
    }
    fputs("</svg>\n", f);
}
