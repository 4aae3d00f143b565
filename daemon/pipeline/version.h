/* version.h: the program's version, shown by `tickcast --version` and recorded in the stats topic,
 * /metrics and the state database. Its own header so that every layer may include it; not for
 * the versions of message or file formats (docs/CONTRACT.md). */
#ifndef DAEMON_VERSION_H
#define DAEMON_VERSION_H

#define TICKCAST_VERSION "0.1.0"

#endif
