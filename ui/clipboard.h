/*
 * clipboard.h — copying text to the user's clipboard through the terminal
 * with the OSC 52 escape, which works over SSH and inside tmux: the terminal
 * the user looks at does the copying, wherever lowbit runs.
 *
 *     ESC ] 52 ; c ; BASE64(text) BEL
 *
 * Inside tmux ($TMUX set) the escape is sent twice: as it is, which tmux
 * takes into its own buffer (and passes on) when `set-clipboard on`, and
 * wrapped for passthrough, which tmux hands to the outer terminal untouched
 * when `allow-passthrough on`:
 *
 *     ESC P tmux ; ESC ESC ] 52 ; c ; BASE64(text) BEL ESC \
 *
 * (every ESC inside the wrapper doubled). A terminal that does not allow
 * OSC 52 ignores it silently: nothing can tell, so the message after a copy
 * says how to turn it on.
 */
#ifndef LB_UI_CLIPBOARD_H
#define LB_UI_CLIPBOARD_H

#include <stdbool.h>
#include <stddef.h>

enum { CLIP_MAX_BYTES = 1 << 20 }; // larger copies are refused (terminals cut them anyway)

// RFC 4648 base64 of in[0..n), with padding. snprintf semantics: returns the
// full length, writes at most cap - 1 bytes and a NUL.
size_t clip_base64(const unsigned char *in, size_t n, char *out, size_t cap);
// The bytes to write for copying text[0..n) (see above); snprintf semantics.
size_t clip_osc52(const char *text, size_t n, bool in_tmux, char *out, size_t cap);
// Copy text[0..n) by writing the escape to the controlling terminal
// (/dev/tty). msg says what was done, or why nothing was: no terminal, a
// terminal without the escape (TERM linux or dumb), too large. `what` names
// the text in the message ("the last answer", "code block 2").
bool clip_copy(const char *text, size_t n, const char *what, char *msg, size_t cap);

#endif
