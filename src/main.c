/* main.c -- command line: read settings, hand off to the supervisor. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hookd/cli.h"
#include "hookd/config.h"
#include "hookd/log.h"
#include "hookd/mem.h"
#include "hookd/supervisor.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: hookd [-c FILE] [--redis URL] [--workers N] [--data-dir DIR]\n"
            "             [--KEY VALUE | --KEY=VALUE ...] [--check-config]\n"
            "       hookd dlq list [--limit N] [--json]      dead letters, newest first\n"
            "       hookd dlq replay (--all | ID...) [--json] back to the queue, attempts reset\n"
            "       hookd dlq purge (--all | ID...) [--json]  drop them\n"
            "       hookd retry list [--limit N] [--json]    pending retries, earliest first\n"
            "       hookd stats [--json]                     depths, in flight, counters\n"
            "       hookd --help | --version\n"
            "(the commands take the same -c / --redis / --prefix / HOOKD_* settings)\n"
            "\n"
            "Webhook delivery engine: takes jobs from the Redis list <prefix>:queue,\n"
            "signs them and POSTs them. With no redis configured it starts a private\n"
            "redis-server on <data_dir>/redis.sock.\n"
            "\n"
            "Settings, lowest precedence first: defaults, the config file (-c),\n"
            "HOOKD_<KEY> environment variables, the command line. Keys:\n");
    if (f == stdout)
        config_print_keys();
}

int main(int argc, char **argv)
{
    struct config cfg;
    struct hk_err err;
    const char *file = NULL;
    int check_only = 0, rc, first = 1;
    struct cli_args cli = { .limit = 20 };

    config_init(&cfg);
    if (argc > 1 && cli_is_command(argv[1])) {
        cli.command = argv[1];
        cli.ids = xcalloc((size_t)argc, sizeof(char *));
        first = 2;
        if (argc > 2 && argv[2][0] != '-' && strcmp(cli.command, "stats") != 0) {
            cli.action = argv[2];
            first = 3;
        }
    }
    /* The file comes first whatever its position, so that the command line
     * overrides it. */
    for (int i = first; i < argc; i++) {
        if ((strcmp(argv[i], "-c") == 0 || strcmp(argv[i], "--config") == 0) && i + 1 < argc)
            file = argv[++i];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            file = argv[i] + 9;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            usage(stdout);
            config_free(&cfg);
            return 0;
        } else if (strcmp(argv[i], "-v") == 0 || strcmp(argv[i], "--version") == 0) {
            printf("hookd %s\n", HOOKD_VERSION);
            config_free(&cfg);
            return 0;
        }
    }
    if (file != NULL && config_load_file(&cfg, file, &err) < 0)
        goto fail;
    if (config_load_env(&cfg, &err) < 0)
        goto fail;
    for (int i = first; i < argc; i++) {
        const char *arg = argv[i];
        char key[64];
        const char *value;

        if (cli.command != NULL) {
            if (strcmp(arg, "--json") == 0) {
                cli.json = 1;
                continue;
            }
            if (strcmp(arg, "--all") == 0) {
                cli.all = 1;
                continue;
            }
            if (strcmp(arg, "--limit") == 0 && i + 1 < argc) {
                cli.limit = atol(argv[++i]);
                if (cli.limit < 1) {
                    hk_err_set(&err, HK_ECONFIG, "usage", "--limit needs a positive number");
                    goto fail;
                }
                continue;
            }
            if (arg[0] != '-') {
                cli.ids[cli.nids++] = arg;
                continue;
            }
        }
        if (strcmp(arg, "-c") == 0 || strcmp(arg, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(arg, "--config=", 9) == 0)
            continue;
        if (strcmp(arg, "--check-config") == 0) {
            check_only = 1;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0) {
            hk_err_set(&err, HK_ECONFIG, "usage", "unexpected argument '%s'", arg);
            goto fail;
        }
        const char *eq = strchr(arg + 2, '=');
        size_t klen = eq ? (size_t)(eq - arg - 2) : strlen(arg + 2);
        if (klen == 0 || klen >= sizeof(key)) {
            hk_err_set(&err, HK_ECONFIG, "usage", "bad option '%s'", arg);
            goto fail;
        }
        memcpy(key, arg + 2, klen);
        key[klen] = '\0';
        if (!config_known_key(key)) {
            hk_err_set(&err, HK_ECONFIG, "usage", "unknown option '%s' (see --help)", arg);
            goto fail;
        }
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc) {
            value = argv[++i];
        } else {
            hk_err_set(&err, HK_ECONFIG, "usage", "option '%s' needs a value", arg);
            goto fail;
        }
        if (config_set(&cfg, key, value, &err) < 0) {
            char msg[sizeof(err.msg)];
            snprintf(msg, sizeof(msg), "%s", err.msg);
            hk_err_set(&err, HK_ECONFIG, "usage", "command line: %s", msg);
            goto fail;
        }
    }
    log_set_level(cfg.log_level);
    if (cli.command != NULL) {
        rc = cli_run(&cfg, &cli);
        free(cli.ids);
        config_free(&cfg);
        return rc;
    }
    if (check_only) {
        printf("configuration OK\n");
        config_free(&cfg);
        return 0;
    }
    rc = supervisor_run(&cfg);
    config_free(&cfg);
    return rc;
fail:
    fprintf(stderr, "hookd: %s\n", err.msg);
    free(cli.ids);
    config_free(&cfg);
    return 2;
}
