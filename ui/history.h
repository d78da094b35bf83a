/*
 * history.h — the input history on disk, shared by every lowbit chat:
 * $XDG_DATA_HOME/lowbit/history (~/.local/share/lowbit/history).
 *
 * One entry per line, oldest first, with backslash, newline, carriage return
 * and tab written \\ \n \r \t (as in session files), so a multi-line message
 * is one line. At most HISTORY_MAX entries are kept. Writing is atomic
 * (FILE.tmp, fsync, rename): a crash leaves the old or the new file.
 */
#ifndef LB_UI_HISTORY_H
#define LB_UI_HISTORY_H

#include <stdbool.h>
#include <stddef.h>

enum { HISTORY_MAX = 1000 };

// The default path (malloc'd); NULL when out of memory.
char *history_default_path(void);

// Read the entries (malloc'd array of malloc'd strings) into *items, *n. A
// missing file is an empty history. False with a one-line message in err
// ("FILE: line N: ...") for a file that cannot be read or a bad escape;
// *items is then NULL.
bool history_load(const char *path, char ***items, int *n, char *err, size_t cap);
// Add `entry` to the file: read it again (another lowbit may have added
// lines since), append unless equal to the last entry, keep the newest
// HISTORY_MAX, write atomically, creating the directory. False with a message.
bool history_append(const char *path, const char *entry, char *err, size_t cap);
void history_free(char **items, int n);

#endif
