/* main.c -- command line: read settings, hand off to the supervisor or to
 * an operator command. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HOOKD_MIMALLOC
#include <mimalloc.h>
#endif

#include "hookd/cli.h"
#include "hookd/cli_send.h"
#include "hookd/cli_verify.h"
#include "hookd/config.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/redis_tls.h"
#include "hookd/rlimit.h"
#include "hookd/supervisor.h"

struct args {
    int argc;
    char **argv;
    int first;                  /* first argument that is not a subcommand word */
    const char *file;           /* -c FILE */
    int check_only;             /* --check-config */
    struct cli_args cli;        /* when a subcommand was given */
    const char *tool;           /* "send" or "verify", which parse their own flags */
    struct cli_send_args send;
    struct cli_verify_args verify;
};

static void usage(void)
{
    printf("usage: hookd [-c FILE] [--redis URL] [--workers N] [--data-dir DIR]\n"
           "             [--KEY VALUE | --KEY=VALUE ...] [--check-config]\n"
           "       hookd dlq list [--limit N] [--json]      dead letters, newest first\n"
           "       hookd dlq show ID... [--json]            whole entries (ID: job id, - for\n"
           "                                                none, or dead_id)\n"
           "       hookd dlq replay (--all | ID...) [--json] back to the queue, attempts reset\n"
           "       hookd dlq purge (--all | ID...) [--json]  drop them\n"
           "       hookd retry list [--limit N] [--json]    pending retries, earliest first\n"
           "       hookd attempts ID... [--json]            a job's attempts: status, error,\n"
           "                                                latency, the answer's start\n"
           "       hookd stats [--json]                     depths, in flight, counters\n"
           "       hookd batch show ID [--json]             a Dialgen batch: state, statistics\n"
           "       hookd endpoints [--json]                 origins held back: breaker open,\n"
           "                                                half_open, disabled, throttled, parked\n"
           "       hookd endpoints enable ORIGIN            close its breaker by hand (ORIGIN:\n"
           "                                                scheme://host[:port] or a URL of it)\n"
           "       hookd endpoints disable ORIGIN           its jobs go to dead as\n"
           "                                                endpoint_disabled until enabled\n"
           "       hookd send URL [--sample NAME | --payload JSON|@FILE] [--event NAME]\n"
           "                  [--id ID] [--secret S]    POST one signed webhook now, print the\n"
           "                  exchange; exit 0 on 2xx, 1 otherwise. NAME: call.completed\n"
           "                  (default), batch.completed, batch.failed (the Dialgen\n"
           "                  documentation's payloads). Signed and sent as a worker would,\n"
           "                  with the same settings: secret (else <data_dir>/secret),\n"
           "                  user_agent, timeout, TLS files, resolve, and the destination\n"
           "                  policy (deny_private, allow_cidrs, deny_cidrs): a refused\n"
           "                  address fails as destination_forbidden. No Redis, no retry.\n"
           "       hookd verify --secret S [-H|--header 'name: value']... [--tolerance 5m]\n"
           "                  < BODY    does a received request (raw body on stdin, its\n"
           "                  headers) verify under x-dialgen-signature and Standard\n"
           "                  Webhooks? if not, why: re-serialised body, timestamp outside\n"
           "                  the tolerance (5m), wrong secret or changed body, ...;\n"
           "                  exit 0 verified, 1 not\n"
           "       hookd --help | --version\n"
           "(the commands take the same -c / --redis / --prefix / HOOKD_* settings)\n"
           "\n"
           "Webhook delivery engine: takes jobs from the Redis list <prefix>:queue,\n"
           "signs them and POSTs them. With no redis configured it starts a private\n"
           "redis-server on <data_dir>/redis.sock.\n"
           "\n"
           "Signals: TERM/INT drain and stop, QUIT stops at once, HUP reloads the\n"
           "config (rolling restart), TTIN/TTOU add/remove a worker.\n"
           "\n"
           "Settings, lowest precedence first: defaults, the config file (-c),\n"
           "HOOKD_<KEY> environment variables, the command line. Keys:\n");
    config_print_keys();
}

/* One of send's or verify's own arguments at argv[i]: how many were
 * taken (0 = none, a setting), or HK_ECONFIG. */
static int tool_arg(struct args *a, int i, struct hk_err *err)
{
    if (strcmp(a->tool, "send") == 0)
        return cli_send_arg(&a->send, a->argc - i, a->argv + i, err);
    return cli_verify_arg(&a->verify, a->argc - i, a->argv + i, err);
}

/* "unknown option '--wrokers'; did you mean '--workers'?" when a key is
 * close (config_suggest_key), written with '-' as --help writes options,
 * unless the option had a '_' (then as the user writes them). */
static int unknown_option(const char *arg, const char *key, struct hk_err *err)
{
    const char *near = config_suggest_key(key);
    char opt[64];
    size_t i;

    if (near == NULL)
        return hk_err_set(err, HK_ECONFIG, "usage", "unknown option '%s' (see --help)", arg);
    for (i = 0; near[i] != '\0' && i < sizeof(opt) - 1; i++)
        opt[i] = near[i] == '_' && strchr(key, '_') == NULL ? '-' : near[i];
    opt[i] = '\0';
    return hk_err_set(err, HK_ECONFIG, "usage", "unknown option '%s'; did you mean '--%s'?",
                      arg, opt);
}

/* A line on stderr for each HOOKD_ variable that is no setting (a typo
 * would otherwise be ignored without a word). Plain text, before any
 * setting is read, like the errors about settings: the misspelled variable
 * may be HOOKD_LOG_FORMAT itself. Once per start, not per SIGHUP: the
 * environment does not change. */
static void warn_environment(void)
{
    extern char **environ;
    char msg[256];

    for (char **e = environ; *e != NULL; e++)
        if (config_env_warning(*e, msg, sizeof(msg)))
            fprintf(stderr, "hookd: warning: %s\n", msg);
}

/* The Redis TLS files, loaded once here so that a wrong one is refused at
 * start (and by --check-config, and on SIGHUP), not by every connection. */
static int check_redis_tls(const struct config *cfg, struct hk_err *err)
{
    struct redis_tls_ctx *ctx;

    if (!cfg->addr.tls)
        return 0;
    if (redis_tls_ctx_new(&cfg->addr.tls_opts, &ctx, err) < 0)
        return HK_ECONFIG;
    redis_tls_ctx_free(ctx);
    return 0;
}

/* Defaults, then the file, the environment and the command line, into cfg
 * (initialised here; the caller frees it even on error). Also collects the
 * subcommand flags. The same function serves start-up and SIGHUP. */
static int build_config(struct config *cfg, struct args *a, struct hk_err *err)
{
    config_init(cfg);
    if (a->file != NULL && config_load_file(cfg, a->file, err) < 0)
        return HK_ECONFIG;
    if (config_load_env(cfg, err) < 0)
        return HK_ECONFIG;
    a->cli.nids = 0;
    a->verify.nheaders = 0;
    memset(&a->send, 0, sizeof(a->send));
    for (int i = a->first; i < a->argc; i++) {
        const char *arg = a->argv[i];
        char key[64];
        const char *value;

        if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--config=", 9) == 0)
            continue;
        if (a->tool != NULL) {
            int used = tool_arg(a, i, err);
            if (used < 0)
                return used;
            if (used > 0) {
                i += used - 1;
                continue;
            }
        }
        if (strcmp(arg, "--check-config") == 0) {
            a->check_only = 1;
            continue;
        }
        if (a->cli.command != NULL) {
            if (strcmp(arg, "--json") == 0) {
                a->cli.json = 1;
                continue;
            }
            if (strcmp(arg, "--all") == 0) {
                a->cli.all = 1;
                continue;
            }
            if (strcmp(arg, "--limit") == 0 && i + 1 < a->argc) {
                a->cli.limit = atol(a->argv[++i]);
                if (a->cli.limit < 1)
                    return hk_err_set(err, HK_ECONFIG, "usage", "--limit needs a positive number");
                continue;
            }
            if (arg[0] != '-' || strcmp(arg, "-") == 0) {
                a->cli.ids[a->cli.nids++] = arg;
                continue;
            }
        }
        if (strncmp(arg, "--", 2) != 0)
            return hk_err_set(err, HK_ECONFIG, "usage", "unexpected argument '%s'", arg);
        const char *eq = strchr(arg + 2, '=');
        size_t klen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (klen == 0 || klen >= sizeof(key))
            return hk_err_set(err, HK_ECONFIG, "usage", "bad option '%s'", arg);
        memcpy(key, arg + 2, klen);
        key[klen] = '\0';
        if (!config_known_key(key))
            return unknown_option(arg, key, err);
        if (eq != NULL)
            value = eq + 1;
        else if (i + 1 < a->argc)
            value = a->argv[++i];
        else
            return hk_err_set(err, HK_ECONFIG, "usage", "option '%s' needs a value", arg);
        if (config_set(cfg, key, value, err) < 0) {
            char msg[sizeof(err->msg)];
            snprintf(msg, sizeof(msg), "%s", err->msg);
            return hk_err_set(err, HK_ECONFIG, "usage", "command line: %s", msg);
        }
    }
    return config_finish(cfg, err) < 0 ? HK_ECONFIG : check_redis_tls(cfg, err);
}

static int reload_config(struct config *out, void *ctx, struct hk_err *err)
{
    int rc = build_config(out, ctx, err);

    if (rc < 0)
        config_free(out);
    return rc;
}

/* The index of the subcommand word (dlq, endpoints, send, ...): argv[1],
 * or the first argument after a leading -c FILE / --config FILE /
 * --config=FILE, so `hookd -c FILE dlq list` works as `hookd dlq list -c
 * FILE` does. argc when there is none. */
static int command_word(int argc, char **argv)
{
    int i = 1;

    while (i < argc) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            i += 2;
        else if (strncmp(argv[i], "--config=", 9) == 0)
            i++;
        else
            return i;
    }
    return argc;
}

int main(int argc, char **argv)
{
    struct args a = { .argc = argc, .argv = argv, .first = 1, .cli = { .limit = 20 } };
    struct config cfg;
    struct hk_err err;
    int rc;

    int w = command_word(argc, argv);

    if (w < argc && (strcmp(argv[w], "send") == 0 || strcmp(argv[w], "verify") == 0)) {
        a.tool = argv[w];
        a.first = w + 1;
    } else if (w < argc && cli_is_command(argv[w])) {
        a.cli.command = argv[w];
        a.first = w + 1;
        if (w + 1 < argc && argv[w + 1][0] != '-' && strcmp(a.cli.command, "stats") != 0 &&
            strcmp(a.cli.command, "attempts") != 0) {
            a.cli.action = argv[w + 1];
            a.first = w + 2;
        }
    }
    a.cli.ids = xcalloc((size_t)argc, sizeof(char *));
    a.verify.headers = xcalloc((size_t)argc, sizeof(char *));
    a.verify.cap = argc;
    a.verify.tolerance_ms = CLI_VERIFY_TOLERANCE_MS;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            a.file = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            a.file = argv[i] + 9;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage();
            free(a.cli.ids);
            free(a.verify.headers);
            return 0;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("hookd %s\n", HOOKD_VERSION);
            free(a.cli.ids);
            free(a.verify.headers);
            return 0;
        }
    }
    warn_environment();
    if (build_config(&cfg, &a, &err) < 0) {
        fprintf(stderr, "hookd: %s\n", err.msg);
        config_free(&cfg);
        free(a.cli.ids);
        free(a.verify.headers);
        return 2;
    }
    log_set_level(cfg.log_level);
    log_set_format(cfg.log_format);
    if (a.tool != NULL && strcmp(a.tool, "send") == 0) {
        rc = cli_send_run(&cfg, &a.send);
    } else if (a.tool != NULL) {
        rc = cli_verify_run(&cfg, &a.verify);
    } else if (a.cli.command != NULL) {
        rc = cli_run(&cfg, &a.cli);
    } else if (rlimit_ensure_files(cfg.max_in_flight, &err) < 0) {
        fprintf(stderr, "hookd: %s\n", err.msg);
        rc = 2;
    } else if (a.check_only) {
        printf("configuration OK\n");
        rc = 0;
    } else {
        struct supervisor_reload rl = { reload_config, &a };
#ifdef HOOKD_MIMALLOC
        /* Also what keeps the linker's --as-needed from dropping mimalloc,
         * which replaces malloc for the whole process (CMakeLists.txt). */
        int v = mi_version();   /* 209 = 2.0.9 */
        log_info("memory allocator: mimalloc %d.%d.%d", v / 100, v / 10 % 10, v % 10);
#endif
        rc = supervisor_run(&cfg, &rl);
    }
    config_free(&cfg);
    free(a.cli.ids);
    free(a.verify.headers);
    return rc;
}
