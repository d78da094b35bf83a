/*
 * text.c — UTF-8 decoding, display widths and wrapping (see text.h).
 */
#include "text.h"

int text_decode(const char *str, size_t n, wchar_t *wc) {
    const unsigned char *s = (const unsigned char *)str;
    if (s[0] < 0x80) {
        *wc = s[0];
        return 1;
    }
    int len = s[0] >= 0xF0 && s[0] <= 0xF4 ? 4 : s[0] >= 0xE0 ? 3 : s[0] >= 0xC2 && s[0] < 0xE0 ? 2 : 0;
    if (len == 0 || (size_t)len > n) {
        *wc = 0xFFFD;
        return 1;
    }
    unsigned v = s[0] & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *wc = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *wc = (wchar_t)v;
    return len;
}

int text_width(wchar_t wc) {
    if (wc < 0x20 || wc == 0x7F) return 1;
    int w = wcwidth(wc);
    return w < 0 ? 1 : w;
}

int text_columns(const char *s, size_t n) {
    int cols = 0;
    for (size_t i = 0; i < n;) {
        wchar_t wc;
        i += (size_t)text_decode(s + i, n - i, &wc);
        cols += text_width(wc);
    }
    return cols;
}

int text_wrap(const char *s, size_t n, int width, struct text_span *out, int cap) {
    if (width < 1) width = 1;
    int lines = 0;
    size_t start = 0, i = 0, last_space = (size_t)-1;
    int cols = 0;
    while (i < n) {
        if (s[i] == '\n') {
            if (lines < cap) out[lines] = (struct text_span){start, i - start};
            lines++;
            i++;
            start = i, cols = 0, last_space = (size_t)-1;
            continue;
        }
        wchar_t wc;
        int len = text_decode(s + i, n - i, &wc);
        int w = text_width(wc);
        if (cols + w > width && i > start) {
            // Break after the last space on this line if there is one, else here.
            size_t end = last_space != (size_t)-1 ? last_space + 1 : i;
            if (lines < cap) out[lines] = (struct text_span){start, end - start};
            lines++;
            start = end, last_space = (size_t)-1;
            cols = text_columns(s + start, i - start);
            continue;
        }
        if (wc == ' ') last_space = i;
        cols += w;
        i += (size_t)len;
    }
    if (lines < cap) out[lines] = (struct text_span){start, n - start};
    return lines + 1;
}
