/* containerd-shim-pyrunc-v2 (and -node-v2): the command containerd runs for every container
 * (`start`) and after every shim connection closes (`delete`, even after a clean Shutdown).
 * A Python start costs 15-130 ms there; this static front hands both to the resident shim
 * process (pyrunc/shim/resident.py), which has everything loaded, and prints its answer:
 * about a millisecond. When no resident process answers (the first container of a node, or
 * one idle for a while), or for anything else, it execs the Python command
 * (pyrunc/shim/main.py), which starts one.
 *
 * Request (one stream connection, written whole, then shut for writing): CLIENT_MAGIC, then
 * NUL-terminated fields: cwd, argv[0], $TTRPC_ADDRESS, $GRPC_ADDRESS, $NAMESPACE,
 * $PYRUNC_SHIM_GROUPING, argv[1..]. Reply, read to EOF: '0' and what to print on stdout,
 * or '1' and an error message (exit 1); nothing at all means "do it yourself" (fallback).
 *
 * Built by setup.py (build_launcher) with shim_config.h defining PYTHON (the interpreter)
 * and FALLBACK_CODE (what it runs: the import directories, then pyrunc.shim.main). */
#define _GNU_SOURCE
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "shim_config.h"

#define CLIENT_MAGIC "pyrunc-shim-client"
#define SOCKET_DIR "/run/containerd/s"
#define REQUEST_MAX 65536

static void fallback(char **argv)
{
    /* python -I -S -c CODE ARGV0 ARGS...: CODE drops the "-c" so sys.argv is ours */
    int argc = 0;
    while (argv[argc])
        argc++;
    char **args = calloc(argc + 6, sizeof(char *));
    if (!args)
        _exit(1);
    args[0] = PYTHON;
    args[1] = "-I";
    args[2] = "-S";
    args[3] = "-c";
    args[4] = FALLBACK_CODE;
    for (int i = 0; i < argc; i++)
        args[5 + i] = argv[i];
    execv(PYTHON, args);
    fprintf(stderr, "%s: exec %s: %s\n", argv[0], PYTHON, strerror(errno));
    _exit(1);
}

/* Go flag syntax (-name value, -name=value, --name): the values the resident's control socket
 * needs, and the action word. */
static const char *flag_value(char **argv, const char *name, const char **action)
{
    static const char *with_value[] = {"namespace", "address", "publish-binary", "id", "bundle", NULL};
    const char *found = NULL;
    for (int i = 1; argv[i]; i++) {
        const char *word = argv[i];
        if (word[0] != '-') {
            *action = word;
            continue;
        }
        word += (word[1] == '-') ? 2 : 1;
        const char *eq = strchr(word, '=');
        size_t length = eq ? (size_t)(eq - word) : strlen(word);
        int takes_value = 0;
        for (int k = 0; with_value[k]; k++)
            if (strlen(with_value[k]) == length && !strncmp(word, with_value[k], length))
                takes_value = 1;
        const char *value = NULL;
        if (takes_value) {
            if (eq)
                value = eq + 1;
            else if (argv[i + 1])
                value = argv[++i];
        }
        if (value && strlen(name) == length && !strncmp(word, name, length))
            found = value;
    }
    return found;
}

/* FNV-1a (64 bit) of "address/namespace": pyrunc/shim/main.py resident_path */
static uint64_t fnv1a(const char *a, const char *b)
{
    uint64_t hash = 0xcbf29ce484222325ULL;
    const char *parts[] = {a, "/", b};
    for (int p = 0; p < 3; p++)
        for (const unsigned char *c = (const unsigned char *)parts[p]; *c; c++) {
            hash ^= *c;
            hash *= 0x100000001b3ULL;
        }
    return hash;
}

static int append(char *buffer, size_t *used, const char *field)
{
    size_t length = strlen(field) + 1;
    if (*used + length > REQUEST_MAX)
        return -1;
    memcpy(buffer + *used, field, length);
    *used += length;
    return 0;
}

static const char *env_or_empty(const char *name)
{
    const char *value = getenv(name);
    return value ? value : "";
}

int main(int argc, char **argv)
{
    (void)argc;
    const char *action = NULL;
    const char *namespace = flag_value(argv, "namespace", &action);
    const char *address = flag_value(argv, "address", &action);
    if (!namespace)
        namespace = getenv("NAMESPACE");
    if (!address)
        address = getenv("GRPC_ADDRESS");
    if (!action || (strcmp(action, "start") && strcmp(action, "delete")) || !namespace || !*namespace || !address)
        fallback(argv);

    struct sockaddr_un server = {.sun_family = AF_UNIX};
    snprintf(server.sun_path, sizeof(server.sun_path), SOCKET_DIR "/pyrunc-shim-%016llx",
             (unsigned long long)fnv1a(address, namespace));
    int sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || connect(sock, (struct sockaddr *)&server, sizeof(server)) < 0)
        fallback(argv);

    static char request[REQUEST_MAX];
    static char cwd[4096];
    size_t used = 0;
    if (!getcwd(cwd, sizeof(cwd)))
        fallback(argv);
    const char *fields[] = {CLIENT_MAGIC, cwd, argv[0], env_or_empty("TTRPC_ADDRESS"),
                            env_or_empty("GRPC_ADDRESS"), env_or_empty("NAMESPACE"),
                            env_or_empty("PYRUNC_SHIM_GROUPING")};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
        if (append(request, &used, fields[i]) < 0)
            fallback(argv);
    for (int i = 1; argv[i]; i++)
        if (append(request, &used, argv[i]) < 0)
            fallback(argv);
    for (size_t sent = 0; sent < used;) {
        ssize_t n = write(sock, request + sent, used - sent);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            fallback(argv);
        sent += n;
    }
    shutdown(sock, SHUT_WR);

    static char reply[REQUEST_MAX];
    size_t got = 0;
    for (;;) {
        ssize_t n = read(sock, reply + got, sizeof(reply) - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            if (got)  /* the answer was cut: the resident process died mid-request */
                break;
            fallback(argv);
        }
        if (n == 0 || (got += n) == sizeof(reply))
            break;
    }
    if (got == 0)
        fallback(argv);  /* it declined (or is an older resident process) */
    int out = reply[0] == '0' ? 1 : 2;
    for (size_t done = 1; done < got;) {
        ssize_t n = write(out, reply + done, got - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return 1;
        done += n;
    }
    if (out == 2) {
        write(2, "\n", 1);
        return 1;
    }
    return 0;
}
