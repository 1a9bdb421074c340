/* The probe image's program (tests/node.rs): from inside a Pod, reach the host at argv[1]:argv[2]
 * (a server the test runs at KEYWARD_NODE_IP) and the API server through the `kubernetes`
 * Service (KUBERNETES_SERVICE_HOST:KUBERNETES_SERVICE_PORT, kube-proxy's DNAT). Prints what
 * each answered; exits 0 only when both answered. Linked statically: the image holds nothing
 * else. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

/* Connects, sends REQUEST, and prints the first line of the answer after LABEL. */
static int ask(const char *label, const char *ip, const char *port, const char *request) {
    struct sockaddr_in addr = {0};
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(port));
    if (inet_pton(AF_INET, ip, &addr.sin_addr) != 1) {
        printf("%s: bad address %s\n", label, ip);
        return 1;
    }
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct timeval timeout = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        perror(label);
        return 1;
    }
    if (write(fd, request, strlen(request)) < 0) {
        perror(label);
        return 1;
    }
    char answer[512] = {0};
    size_t got = 0;
    ssize_t n;
    while (got < sizeof answer - 1 && (n = read(fd, answer + got, sizeof answer - 1 - got)) > 0) {
        got += (size_t)n;
        if (memchr(answer, '\n', got)) break;
    }
    close(fd);
    char *end = strpbrk(answer, "\r\n");
    if (end) *end = 0;
    printf("%s: %s\n", label, answer);
    return got == 0;
}

int main(int argc, char **argv) {
    const char *service_host = getenv("KUBERNETES_SERVICE_HOST");
    const char *service_port = getenv("KUBERNETES_SERVICE_PORT");
    if (argc != 3 || !service_host || !service_port) {
        printf("usage: probe HOST_IP PORT (in a Pod with the kubernetes Service's variables)\n");
        return 2;
    }
    int failed = ask("host", argv[1], argv[2], "hello from a pod\n");
    /* The API server speaks TLS; a plain HTTP request gets Go's own plain-text 400 answer,
     * which names an HTTPS server: proof that the Service led to it. */
    failed |= ask("apiserver", service_host, service_port, "GET /livez HTTP/1.0\r\n\r\n");
    fflush(stdout);
    return failed;
}
