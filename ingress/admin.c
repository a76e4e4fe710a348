/* The operator listener (see admin.h). Its answers are small and built at
 * once, so each request is answered from the first call of the handler,
 * before any body; a body is never read. */
#include "admin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netaddr.h"

#define ADMIN_CONNECTIONS 32 /* a scraper or two, and health probes */
#define ADMIN_TIMEOUT_S 10

struct admin {
    struct ingress *ing;
    struct MHD_Daemon *daemon;
};

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type, char *text,
                              enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(strlen(text), text, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(text);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *upload_data, size_t *upload_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    (void)con_cls;
    struct admin *a = cls;
    *upload_size = 0;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, 405, "application/json", "{\"error\":\"use GET\"}", MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/metrics") == 0) {
        char *text = metrics_render(a->ing->metrics);
        if (!text)
            return answer(conn, 503, "application/json", "{\"error\":\"out of memory\"}", MHD_RESPMEM_PERSISTENT);
        return answer(conn, 200, "text/plain; version=0.0.4", text, MHD_RESPMEM_MUST_FREE);
    }
    if (strcmp(url, "/healthz") == 0)
        return answer(conn, 200, "application/json", "{\"ok\":true}", MHD_RESPMEM_PERSISTENT);
    if (strcmp(url, "/readyz") == 0) {
        int view = atomic_load(&a->ing->view_caught_up);
        int kafka = !atomic_load(&a->ing->producer_failed);
        char body[96];
        snprintf(body, sizeof body, "{\"ready\":%s,\"view_caught_up\":%s,\"kafka\":%s}",
                 view && kafka ? "true" : "false", view ? "true" : "false", kafka ? "true" : "false");
        return answer(conn, view && kafka ? 200 : 503, "application/json", body, MHD_RESPMEM_MUST_COPY);
    }
    return answer(conn, 404, "application/json", "{\"error\":\"not found\"}", MHD_RESPMEM_PERSISTENT);
}

struct admin *admin_start(struct ingress *ing, const char *listen, char *err, size_t errlen)
{
    struct sockaddr_storage addr;
    socklen_t addr_len;
    if (netaddr_listen_parse(listen, &addr, &addr_len) < 0) {
        snprintf(err, errlen, "METRICS_LISTEN: not an address and port");
        return NULL;
    }
    struct admin *a = calloc(1, sizeof *a);
    if (!a) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    a->ing = ing;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL;
    uint16_t port;
    if (addr.ss_family == AF_INET6) {
        flags |= MHD_USE_IPv6;
        port = ntohs(((struct sockaddr_in6 *)(void *)&addr)->sin6_port);
    } else {
        port = ntohs(((struct sockaddr_in *)(void *)&addr)->sin_port);
    }
    a->daemon = MHD_start_daemon(flags, port, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr,
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)ADMIN_CONNECTIONS,
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)ADMIN_TIMEOUT_S, MHD_OPTION_END);
    if (!a->daemon) {
        snprintf(err, errlen, "cannot listen on METRICS_LISTEN (%s)", listen);
        free(a);
        return NULL;
    }
    return a;
}

unsigned admin_port(const struct admin *a)
{
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(a->daemon, MHD_DAEMON_INFO_BIND_PORT);
    return info ? info->port : 0;
}

void admin_stop(struct admin *a)
{
    if (!a)
        return;
    MHD_stop_daemon(a->daemon);
    free(a);
}
