/* table.c — aligned text tables for people: `runs list`, the sections of `runs show`,
 * `artifacts`. A table is gathered whole (its widths depend on every row), so commands build
 * one only for outputs that are small: a metric history is never a table of this kind.
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

void table_init(struct table *t, size_t ncols, uint32_t right_aligned)
{
    *t = (struct table){.ncols = ncols, .right_aligned = right_aligned};
}

void table_cell(struct table *t, const char *text)
{
    if (t->err)
        return;
    char *cell = text_escape(text);
    if (!cell || cli_push(&t->cells, &t->ncells, &t->cap, sizeof *t->cells, &cell) < 0) {
        free(cell);
        t->err = -ENOMEM;
    }
}

void table_cellf(struct table *t, const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    table_cell(t, buf);
}

/* Columns a terminal gives the text: one per code point (cells are valid UTF-8 by now). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        w += ((unsigned char)*s & 0xc0) != 0x80;
    return w;
}

static void pad(FILE *f, size_t n)
{
    while (n--)
        fputc(' ', f);
}

int table_print(const struct table *t, FILE *f, const char *indent)
{
    if (t->err)
        return t->err;
    size_t *width = calloc(t->ncols, sizeof *width);
    if (!width)
        return -ENOMEM;
    for (size_t i = 0; i < t->ncells; i++) {
        size_t w = text_width(t->cells[i]);
        if (w > width[i % t->ncols])
            width[i % t->ncols] = w;
    }
    for (size_t i = 0; i < t->ncells; i++) {
        size_t col = i % t->ncols;
        size_t gap = width[col] - text_width(t->cells[i]);
        bool right = t->right_aligned & (1u << col);
        bool last = col + 1 == t->ncols;
        fputs(col ? "  " : indent, f);
        if (right)
            pad(f, gap);
        fputs(t->cells[i], f);
        if (!right && !last)
            pad(f, gap);
        if (last)
            fputc('\n', f);
    }
    free(width);
    return 0;
}

void table_free(struct table *t)
{
    for (size_t i = 0; i < t->ncells; i++)
        free(t->cells[i]);
    free(t->cells);
    *t = (struct table){0};
}
