/* log: one line per event on stderr, logfmt or JSON. Thread-safe: each line
 * is formatted on the stack and written with a single write(2). */
#ifndef PORTCULLIS_LOG_H
#define PORTCULLIS_LOG_H

#include <stdbool.h>
#include "base/config.h"

void log_configure(enum log_level level, enum log_format format);
bool log_enabled(enum log_level level);

/* log_event(LOG_INFO, "connect", "ip", "203.0.113.7", "session", "1A2B", NULL):
 * the arguments after the event name are key, value pairs ending in NULL.
 * A NULL or empty value leaves its key out. Values are quoted as needed. */
void log_event(enum log_level level, const char *event, ...) __attribute__((sentinel));

#endif
