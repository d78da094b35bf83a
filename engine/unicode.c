/*
 * unicode.c — UTF-8 decoding and code point classes for the tokenizers.
 */
#include "unicode.h"

#include "unicode_data.h"

size_t unicode_len_from_lead(uint8_t lead) {
    // Indexed by the high nibble: 0xxx → 1, 10xx (continuation) → 1, 110x → 2, 1110 → 3, 1111 → 4.
    static const uint8_t len[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return len[lead >> 4];
}

size_t unicode_decode(const char *s, size_t len, uint32_t *cp) {
    const uint8_t *u = (const uint8_t *)s;
    uint8_t b0 = u[0];
    if (b0 < 0x80) {
        *cp = b0;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((b0 & 0xE0) == 0xC0) {
        n = 2, v = b0 & 0x1F, min = 0x80;
    } else if ((b0 & 0xF0) == 0xE0) {
        n = 3, v = b0 & 0x0F, min = 0x800;
    } else if ((b0 & 0xF8) == 0xF0) {
        n = 4, v = b0 & 0x07, min = 0x10000;
    } else {
        goto bad; // continuation byte or 0xF8..0xFF as a lead
    }
    if (n > len)
        goto bad;
    for (size_t i = 1; i < n; i++) {
        if ((u[i] & 0xC0) != 0x80)
            goto bad;
        v = (v << 6) | (u[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
        goto bad; // overlong, out of range, or a surrogate
    *cp = v;
    return n;
bad:
    *cp = UNICODE_BAD_BYTE + b0;
    return 1;
}

size_t unicode_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    if (cp < 0x110000) {
        out[0] = (char)(0xF0 | (cp >> 18));
        out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[3] = (char)(0x80 | (cp & 0x3F));
        return 4;
    }
    return 0;
}

enum unicode_class unicode_class_of(uint32_t cp) {
    // ASCII is most of the text the pre-tokenizers see: answer without the search.
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z')
            return UNICODE_LETTER;
        if (cp >= '0' && cp <= '9')
            return UNICODE_NUMBER;
        if (cp == ' ' || (cp >= 0x09 && cp <= 0x0D))
            return UNICODE_SPACE;
        return UNICODE_OTHER;
    }
    size_t lo = 0, hi = sizeof unicode_class_ranges / sizeof unicode_class_ranges[0];
    while (lo < hi) { // first range with hi >= cp
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_class_ranges[mid].hi < cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    const size_t n = sizeof unicode_class_ranges / sizeof unicode_class_ranges[0];
    if (lo < n && unicode_class_ranges[lo].lo <= cp)
        return (enum unicode_class)unicode_class_ranges[lo].cls;
    return UNICODE_OTHER;
}

uint32_t unicode_tolower(uint32_t cp) {
    if (cp < 0x80)
        return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
    size_t lo = 0, hi = sizeof unicode_lower_runs / sizeof unicode_lower_runs[0];
    while (lo < hi) { // first run with lo > cp; the candidate is the one before
        size_t mid = lo + (hi - lo) / 2;
        if (unicode_lower_runs[mid].lo <= cp)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return cp;
    // Runs never shadow each other (gen_unicode.py checks), so the last run
    // starting at or before cp is the only one that can hold it.
    size_t i = lo - 1;
    if (cp <= unicode_lower_runs[i].hi && (cp - unicode_lower_runs[i].lo) % unicode_lower_runs[i].step == 0)
        return (uint32_t)((int32_t)cp + unicode_lower_runs[i].delta);
    return cp;
}

const char *unicode_version(void) { return UNICODE_DATA_VERSION; }
