// SPDX-License-Identifier: GPL-2.0
// sqlx: SQLite (Debian's libsqlite3.a, linked in) on a shared database,
// for the SQLite tests.
//
//   sqlx DB init MODE              creates table t (host, batch, i) in
//                                  journal mode MODE (persist, wal, ...)
//   sqlx DB insert MODE HOST N K   N transactions, each inserting K rows
//                                  (HOST, batch, 0..K-1), batches numbered
//                                  from 0; every statement waits for locks
//                                  (busy timeout 60 s)
//   sqlx DB check HOSTS N K        PRAGMA integrity_check is "ok", and
//                                  each host 1..HOSTS has exactly N*K rows,
//                                  each (host, batch, i) once
//   sqlx DB read MODE SECS K       for SECS seconds (once at least), reads in transactions:
//                                  every batch it sees is whole (its K rows
//                                  commit together) and the count never
//                                  goes down; prints the reads made
//   sqlx DB checkpoint             PRAGMA wal_checkpoint(FULL), which must
//                                  leave nothing behind in the WAL
//   sqlx DB dump                   prints every row, in order (to compare
//                                  databases)
//
// DB may be a URI ("file:/export/db?immutable=1"). Prints "ok" (or what
// the step reports) and exits 0, or prints what went wrong and exits 1.
#define _GNU_SOURCE
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static sqlite3 *db;

static void die(const char *what)
{
	printf("%s: %s (%d, errno %d)\n", what, db ? sqlite3_errmsg(db) : "?",
	       db ? sqlite3_extended_errcode(db) : 0, db ? sqlite3_system_errno(db) : 0);
	exit(1);
}

static void exec(const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK) {
		printf("%s: %s (%d, errno %d)\n", sql, err ? err : "?", sqlite3_extended_errcode(db),
		       sqlite3_system_errno(db));
		exit(1);
	}
}

// The single value of a query, as an integer.
static long long one(const char *sql)
{
	sqlite3_stmt *st;
	long long v;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		die(sql);
	if (sqlite3_step(st) != SQLITE_ROW)
		die(sql);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	return v;
}

static void mode(const char *m)
{
	char sql[64], want[16];
	sqlite3_stmt *st;

	snprintf(sql, sizeof(sql), "PRAGMA journal_mode=%s", m);
	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
		die(sql);
	snprintf(want, sizeof(want), "%s", m);
	if (strcasecmp((const char *)sqlite3_column_text(st, 0), want)) {
		printf("journal mode is %s, not %s\n", sqlite3_column_text(st, 0), want);
		exit(1);
	}
	sqlite3_finalize(st);
}

static double now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *op;

	if (argc < 3) {
		fprintf(stderr, "usage: sqlx DB init|insert|check|read|checkpoint|dump ...\n");
		return 2;
	}
	op = argv[2];
	// (A URI is for looking at a copy: read-only.)
	if (sqlite3_open_v2(argv[1], &db,
			    (strncmp(argv[1], "file:", 5) ? SQLITE_OPEN_READWRITE : SQLITE_OPEN_READONLY) |
			    SQLITE_OPEN_URI, NULL) != SQLITE_OK)
		die("open");
	sqlite3_busy_timeout(db, 60000);
	// The WAL stays when the last connection closes (and so does the
	// -shm file): WFS cannot remove files yet.
	{
		int keep = 1;

		sqlite3_file_control(db, "main", SQLITE_FCNTL_PERSIST_WAL, &keep);
	}

	if (!strcmp(op, "init") && argc == 4) {
		// A database turns to WAL once it has its table (SQLite removes
		// a WAL it finds beside an empty database), the table made
		// with the rollback journal in memory: a WAL database must have
		// no rollback journal file beside it, which SQLite would remove
		// (WFS cannot remove files yet).
		int wal = !strcasecmp(argv[3], "wal");

		mode(wal ? "memory" : argv[3]);
		exec("CREATE TABLE t (host INTEGER, batch INTEGER, i INTEGER, pad TEXT,"
		     " PRIMARY KEY (host, batch, i))");
		if (wal)
			mode("wal");
	} else if (!strcmp(op, "insert") && argc == 7) {
		int host = atoi(argv[4]), n = atoi(argv[5]), k = atoi(argv[6]);
		sqlite3_stmt *st;

		mode(argv[3]);
		if (sqlite3_prepare_v2(db, "INSERT INTO t VALUES (?, ?, ?, randomblob(200))", -1, &st,
				       NULL) != SQLITE_OK)
			die("prepare");
		for (int b = 0; b < n; b++) {
			exec("BEGIN IMMEDIATE");
			for (int i = 0; i < k; i++) {
				sqlite3_bind_int(st, 1, host);
				sqlite3_bind_int(st, 2, b);
				sqlite3_bind_int(st, 3, i);
				if (sqlite3_step(st) != SQLITE_DONE)
					die("insert");
				sqlite3_reset(st);
			}
			exec("COMMIT");
		}
		sqlite3_finalize(st);
	} else if (!strcmp(op, "check") && argc == 6) {
		int hosts = atoi(argv[3]), n = atoi(argv[4]), k = atoi(argv[5]);
		sqlite3_stmt *st;
		char sql[160];
		const char *ic;

		if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW)
			die("integrity_check");
		ic = (const char *)sqlite3_column_text(st, 0);
		if (strcmp(ic, "ok")) {
			printf("integrity_check: %s\n", ic);
			return 1;
		}
		sqlite3_finalize(st);
		for (int h = 1; h <= hosts; h++) {
			long long rows, distinct;

			snprintf(sql, sizeof(sql), "SELECT count(*) FROM t WHERE host = %d", h);
			rows = one(sql);
			snprintf(sql, sizeof(sql),
				 "SELECT count(*) FROM (SELECT DISTINCT batch, i FROM t WHERE host = %d"
				 " AND batch BETWEEN 0 AND %d AND i BETWEEN 0 AND %d)", h, n - 1, k - 1);
			distinct = one(sql);
			if (rows != (long long)n * k || distinct != rows) {
				printf("host %d has %lld rows (%lld different), not %d\n", h, rows, distinct,
				       n * k);
				return 1;
			}
		}
		if (one("SELECT count(*) FROM t") != (long long)hosts * n * k) {
			printf("%lld rows in all, not %d\n", one("SELECT count(*) FROM t"), hosts * n * k);
			return 1;
		}
	} else if (!strcmp(op, "read") && argc == 6) {
		double end = now() + atof(argv[4]);
		long long last = 0, reads = 0;
		char sql[160];

		snprintf(sql, sizeof(sql), "SELECT count(*) FROM (SELECT host, batch FROM t"
			 " GROUP BY host, batch HAVING count(*) != %d)", atoi(argv[5]));
		mode(argv[3]);
		// (At least one read, however long opening took.)
		do {
			long long rows, broken;

			exec("BEGIN");
			rows = one("SELECT count(*) FROM t");
			// A batch commits whole: any group of another size was
			// seen half-written.
			broken = one(sql);
			exec("COMMIT");
			if (broken) {
				printf("read %lld: %lld batches seen partly\n", reads, broken);
				return 1;
			}
			if (rows < last) {
				printf("read %lld: %lld rows after %lld\n", reads, rows, last);
				return 1;
			}
			last = rows;
			reads++;
		} while (now() < end);
		printf("%lld reads, last %lld rows\n", reads, last);
		sqlite3_close(db);
		return 0;
	} else if (!strcmp(op, "checkpoint") && argc == 3) {
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "PRAGMA wal_checkpoint(FULL)", -1, &st, NULL) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW)
			die("wal_checkpoint");
		if (sqlite3_column_int(st, 0) != 0 ||
		    sqlite3_column_int(st, 1) != sqlite3_column_int(st, 2)) {
			printf("checkpoint: busy %d, %d frames in the WAL, %d checkpointed\n",
			       sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
			       sqlite3_column_int(st, 2));
			return 1;
		}
		sqlite3_finalize(st);
	} else if (!strcmp(op, "dump") && argc == 3) {
		sqlite3_stmt *st;

		if (sqlite3_prepare_v2(db, "SELECT host, batch, i FROM t ORDER BY host, batch, i", -1,
				       &st, NULL) != SQLITE_OK)
			die("dump");
		while (sqlite3_step(st) == SQLITE_ROW)
			printf("%d %d %d\n", sqlite3_column_int(st, 0), sqlite3_column_int(st, 1),
			       sqlite3_column_int(st, 2));
		sqlite3_finalize(st);
		sqlite3_close(db);
		return 0;
	} else {
		fprintf(stderr, "sqlx: bad arguments\n");
		return 2;
	}
	if (sqlite3_close(db) != SQLITE_OK)
		die("close");
	printf("ok\n");
	return 0;
}
