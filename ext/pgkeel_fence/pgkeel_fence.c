/*
 * pgkeel_fence: the leader lease enforced inside PostgreSQL.
 *
 * A primary must stop acknowledging writes by its fence deadline even when the HA agent that holds
 * the lease is stalled, frozen or dead. This module refuses, at commit, every transaction that wrote
 * (has an xid) once CLOCK_BOOTTIME has passed the deadline that the agent last wrote into a small
 * file shared with postgres through mmap(MAP_SHARED). No SQL is involved on the hot path and no
 * CREATE EXTENSION is needed: the module only has to be in shared_preload_libraries.
 *
 * Deadline file (pgkeel_fence.deadline_file), fixed 64 bytes, little-endian:
 *
 *   offset size  field
 *        0    8  magic "PGKFENC1"
 *        8    4  version (uint32, 1)
 *       12    4  armed (uint32: 1 = armed; anything else = fenced)
 *       16    8  deadline (int64, CLOCK_BOOTTIME nanoseconds)
 *       24   36  boot id (/proc/sys/kernel/random/boot_id, ASCII, no newline)
 *       60    4  reserved (zero)
 *
 * The writer (src/pgkeel/instance/fence.py) stores the deadline with one aligned 8-byte store and
 * sets armed only after it; a reader loads armed, then (after a read barrier) the deadline, so it
 * never sees a half-written deadline nor "armed" with a deadline written before the last arming.
 *
 * Fail closed: no file configured, file missing, unreadable, wrong size, wrong magic or version,
 * boot id of another boot (CLOCK_BOOTTIME restarts at reboot), armed != 1, or deadline passed:
 * the write is refused. Read-only transactions are never refused. pgkeel_fence.enforce = off
 * (PGC_SIGHUP) disables the check for maintenance by hand.
 *
 * Each backend maps the file lazily at its first write commit and stat()s the path at every write
 * commit, so a removed file refuses and a replaced file (rename over the path) is remapped.
 *
 * Sessions: on a primary (not in recovery) whose lease is not valid, a new TCP session is rejected
 * at connection time with SQLSTATE 57P03 (cannot connect now), so clients that route by host list
 * (libpq target_session_attrs=read-write, JDBC targetServerType=primary) move on to the new primary
 * at once instead of staying on a node that refuses every commit; a deposed primary's reads may be
 * stale, too. Still admitted: sessions over the Unix socket (the node's own agent, an operator on
 * the host) and non-superuser roles with REPLICATION (replicas, peers' election probes, pg_rewind);
 * their writes
 * are still refused at commit. Applications connect over TCP, whatever role they use (the
 * superuser included). pgkeel_fence.reject_sessions = off (PGC_SIGHUP) admits every session.
 */
#include "postgres.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "access/xact.h"
#include "access/xlog.h"
#include "fmgr.h"
#include "funcapi.h"
#include "libpq/auth.h"
#include "libpq/libpq-be.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "port/atomics.h"
#include "replication/walsender.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

#ifdef WORDS_BIGENDIAN
#error "pgkeel_fence: the deadline file is little-endian; big-endian hosts are not supported"
#endif

#define FENCE_MAGIC "PGKFENC1"
#define FENCE_VERSION 1
#define FENCE_SIZE 64
#define BOOT_ID_LEN 36
#define BOOT_ID_PATH "/proc/sys/kernel/random/boot_id"

typedef struct FenceFileData
{
	char		magic[8];
	uint32		version;
	uint32		armed;
	int64		deadline_ns;
	char		boot_id[BOOT_ID_LEN];
	char		reserved[4];
} FenceFileData;

StaticAssertDecl(sizeof(FenceFileData) == FENCE_SIZE, "deadline file layout is 64 bytes");
StaticAssertDecl(offsetof(FenceFileData, deadline_ns) == 16, "deadline is 8-byte aligned at 16");

typedef enum FenceVerdict
{
	FENCE_OK,
	FENCE_NOT_CONFIGURED,
	FENCE_MISSING,
	FENCE_BAD_FILE,
	FENCE_NO_BOOT_ID,
	FENCE_OTHER_BOOT,
	FENCE_DISARMED,
	FENCE_EXPIRED,
} FenceVerdict;

void		_PG_init(void);

static char *fence_deadline_file = NULL;
static bool fence_enforce = true;
static bool fence_reject_sessions = true;

static const volatile FenceFileData *fence_map = NULL;
static dev_t fence_dev;
static ino_t fence_ino;
static char own_boot_id[BOOT_ID_LEN];
static bool own_boot_id_known = false;

static ProcessUtility_hook_type prev_ProcessUtility = NULL;
static ClientAuthentication_hook_type prev_ClientAuthentication = NULL;

static bool
check_deadline_file(char **newval, void **extra, GucSource source)
{
	if (*newval != NULL && (*newval)[0] != '\0' && !is_absolute_path(*newval))
	{
		GUC_check_errdetail("pgkeel_fence.deadline_file must be an absolute path.");
		return false;
	}
	return true;
}

static void
fence_unmap(void)
{
	if (fence_map != NULL)
		munmap((void *) fence_map, FENCE_SIZE);
	fence_map = NULL;
}

static bool
read_own_boot_id(void)
{
	int			fd;
	ssize_t		n;

	if (own_boot_id_known)
		return true;
	fd = open(BOOT_ID_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, own_boot_id, BOOT_ID_LEN);
	close(fd);
	own_boot_id_known = (n == BOOT_ID_LEN);
	return own_boot_id_known;
}

/* Map the file at the configured path (st: its stat, refreshed from the opened fd). */
static FenceVerdict
fence_map_file(struct stat *st)
{
	int			fd;
	void	   *p;

	fd = open(fence_deadline_file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? FENCE_MISSING : FENCE_BAD_FILE;
	if (fstat(fd, st) != 0 || st->st_size != FENCE_SIZE)
	{
		close(fd);
		return FENCE_BAD_FILE;
	}
	p = mmap(NULL, FENCE_SIZE, PROT_READ, MAP_SHARED, fd, 0);
	close(fd);
	if (p == MAP_FAILED)
		return FENCE_BAD_FILE;
	fence_map = (const volatile FenceFileData *) p;
	fence_dev = st->st_dev;
	fence_ino = st->st_ino;
	return FENCE_OK;
}

/* The verdict for a write committing now; *left_ns = deadline - now when the file is valid. */
static FenceVerdict
fence_check(int64 *left_ns)
{
	struct stat st;
	struct timespec ts;
	FenceVerdict v;
	uint32		armed;
	int64		deadline;
	int64		now;

	*left_ns = 0;
	if (fence_deadline_file == NULL || fence_deadline_file[0] == '\0')
		return FENCE_NOT_CONFIGURED;
	if (stat(fence_deadline_file, &st) != 0)
	{
		fence_unmap();
		return errno == ENOENT ? FENCE_MISSING : FENCE_BAD_FILE;
	}
	if (fence_map != NULL && (st.st_dev != fence_dev || st.st_ino != fence_ino))
		fence_unmap();			/* replaced: follow the new file */
	if (st.st_size != FENCE_SIZE)
	{
		fence_unmap();			/* truncated: never touch the mapping (SIGBUS) */
		return FENCE_BAD_FILE;
	}
	if (fence_map == NULL && (v = fence_map_file(&st)) != FENCE_OK)
		return v;
	if (memcmp((const char *) fence_map->magic, FENCE_MAGIC, 8) != 0 ||
		fence_map->version != FENCE_VERSION)
		return FENCE_BAD_FILE;
	if (!read_own_boot_id())
		return FENCE_NO_BOOT_ID;
	if (memcmp((const char *) fence_map->boot_id, own_boot_id, BOOT_ID_LEN) != 0)
		return FENCE_OTHER_BOOT;
	armed = fence_map->armed;
	pg_read_barrier();
	deadline = fence_map->deadline_ns;
	if (clock_gettime(CLOCK_BOOTTIME, &ts) != 0)
		return FENCE_BAD_FILE;
	now = (int64) ts.tv_sec * INT64CONST(1000000000) + ts.tv_nsec;
	*left_ns = deadline - now;
	if (armed != 1)
		return FENCE_DISARMED;
	if (now >= deadline)
		return FENCE_EXPIRED;
	return FENCE_OK;
}

static const char *
verdict_text(FenceVerdict v)
{
	switch (v)
	{
		case FENCE_OK:
			return "lease valid";
		case FENCE_NOT_CONFIGURED:
			return "pgkeel_fence.deadline_file is not set";
		case FENCE_MISSING:
			return "the deadline file does not exist";
		case FENCE_BAD_FILE:
			return "the deadline file is unreadable or not a pgkeel_fence deadline file";
		case FENCE_NO_BOOT_ID:
			return "cannot read " BOOT_ID_PATH;
		case FENCE_OTHER_BOOT:
			return "the deadline file was written before the last reboot";
		case FENCE_DISARMED:
			return "the lease is disarmed";
		case FENCE_EXPIRED:
			return "the lease deadline has passed";
	}
	return "unknown";
}

static void
fence_enforce_now(const char *what)
{
	int64		left_ns;
	FenceVerdict v;

	if (!fence_enforce)
		return;
	v = fence_check(&left_ns);
	if (v == FENCE_OK)
		return;
	if (v == FENCE_EXPIRED)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("pgkeel_fence: the leader lease deadline has passed; this node may no longer be the primary"),
				 errdetail("Refusing to %s: the deadline passed %.3f s ago (deadline file \"%s\").",
						   what, (double) -left_ns / 1e9, fence_deadline_file),
				 errhint("Writes resume when the pgkeel agent renews the lease on this node. "
						 "For maintenance by hand set pgkeel_fence.enforce = off and reload.")));
	ereport(ERROR,
			(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
			 errmsg("pgkeel_fence: this node holds no valid leader lease; it may not be the primary"),
			 errdetail("Refusing to %s: %s (deadline file \"%s\").",
					   what, verdict_text(v), fence_deadline_file ? fence_deadline_file : ""),
			 errhint("Writes resume when the pgkeel agent arms the lease on this node. "
					 "For maintenance by hand set pgkeel_fence.enforce = off and reload.")));
}

static void
fence_xact_callback(XactEvent event, void *arg)
{
	if (event != XACT_EVENT_PRE_COMMIT && event != XACT_EVENT_PRE_PREPARE)
		return;
	if (!TransactionIdIsValid(GetTopTransactionIdIfAny()))
		return;					/* read-only: never refused */
	fence_enforce_now(event == XACT_EVENT_PRE_COMMIT ? "commit a write" : "prepare a write");
}

/* COMMIT/ROLLBACK PREPARED finish a transaction prepared earlier: also writes, also fenced. */
static void
fence_ProcessUtility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
					 ProcessUtilityContext context, ParamListInfo params,
					 QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Node	   *stmt = pstmt->utilityStmt;

	if (IsA(stmt, TransactionStmt))
	{
		TransactionStmtKind kind = ((TransactionStmt *) stmt)->kind;

		if (kind == TRANS_STMT_COMMIT_PREPARED || kind == TRANS_STMT_ROLLBACK_PREPARED)
			fence_enforce_now("finish a prepared transaction");
	}
	if (prev_ProcessUtility)
		prev_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

/* Admitted while the lease is not valid: the Unix socket (this node's agent, an operator on the
 * host) and roles with REPLICATION (replicas, peers' probes, pg_rewind) that are not superusers:
 * initdb gives its superuser REPLICATION too, and applications often connect as it. */
static bool
session_exempt(Port *port)
{
	Oid			roleid;

	if (port->raddr.addr.ss_family == AF_UNIX)
		return true;
	roleid = get_role_oid(port->user_name, true);
	return OidIsValid(roleid) && has_rolreplication(roleid) && !superuser_arg(roleid);
}

/* Reject a new ordinary session on a primary that holds no valid lease (see the header). */
static void
fence_ClientAuthentication(Port *port, int status)
{
	int64		left_ns;
	FenceVerdict v;

	if (prev_ClientAuthentication)
		prev_ClientAuthentication(port, status);
	if (status != STATUS_OK || !fence_enforce || !fence_reject_sessions || am_walsender)
		return;
	if (RecoveryInProgress())
		return;					/* a standby: read-only anyway, and the lease is not its business */
	v = fence_check(&left_ns);
	if (v == FENCE_OK || session_exempt(port))
		return;
	ereport(FATAL,
			(errcode(ERRCODE_CANNOT_CONNECT_NOW),
			 errmsg("pgkeel_fence: this node holds no valid leader lease; connect to the current primary"),
			 errdetail("New TCP sessions are not accepted here: %s (deadline file \"%s\").",
					   verdict_text(v), fence_deadline_file ? fence_deadline_file : ""),
			 errhint("Sessions are accepted again when the pgkeel agent renews the lease on this node. "
					 "The local socket and replication roles are still admitted.")));
}

PG_FUNCTION_INFO_V1(pgkeel_fence_status);

/* For humans: pgkeel_fence_status() -> (writable, reason, seconds_left, enforce). */
Datum
pgkeel_fence_status(PG_FUNCTION_ARGS)
{
	TupleDesc	tupdesc;
	Datum		values[4];
	bool		nulls[4] = {false, false, false, false};
	int64		left_ns;
	FenceVerdict v;

	if (get_call_result_type(fcinfo, NULL, &tupdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "pgkeel_fence_status: return type must be a row type");
	v = fence_check(&left_ns);
	values[0] = BoolGetDatum(v == FENCE_OK || !fence_enforce);
	values[1] = CStringGetTextDatum(verdict_text(v));
	values[2] = Float8GetDatum((double) left_ns / 1e9);
	nulls[2] = (v != FENCE_OK && v != FENCE_EXPIRED && v != FENCE_DISARMED);
	values[3] = BoolGetDatum(fence_enforce);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(tupdesc, values, nulls)));
}

void
_PG_init(void)
{
	if (!process_shared_preload_libraries_in_progress)
		ereport(ERROR,
				(errmsg("pgkeel_fence must be loaded via shared_preload_libraries")));

	DefineCustomStringVariable("pgkeel_fence.deadline_file",
							   "Absolute path of the leader lease deadline file (outside PGDATA).",
							   "Written by the pgkeel agent; missing or invalid means writes are refused.",
							   &fence_deadline_file,
							   "",
							   PGC_POSTMASTER,
							   0,
							   check_deadline_file, NULL, NULL);
	DefineCustomBoolVariable("pgkeel_fence.enforce",
							 "Refuse write commits once the leader lease deadline has passed.",
							 "Off only for maintenance by hand; the agent never sets it.",
							 &fence_enforce,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	DefineCustomBoolVariable("pgkeel_fence.reject_sessions",
							 "Reject new TCP sessions on a primary without a valid lease.",
							 "So that clients routing by host list find the new primary at once.",
							 &fence_reject_sessions,
							 true,
							 PGC_SIGHUP,
							 0,
							 NULL, NULL, NULL);
	MarkGUCPrefixReserved("pgkeel_fence");

	RegisterXactCallback(fence_xact_callback, NULL);
	prev_ProcessUtility = ProcessUtility_hook;
	ProcessUtility_hook = fence_ProcessUtility;
	prev_ClientAuthentication = ClientAuthentication_hook;
	ClientAuthentication_hook = fence_ClientAuthentication;
}
