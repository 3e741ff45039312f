/* A static HTTP server, the only program of the distroless image: reads its
 * configuration, answers every request with a fixed body, logs each one. */
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int port_from_config(const char *path) {
  FILE *config = fopen(path, "r");
  int port = 8081;
  if (config) {
    if (fscanf(config, "port=%d", &port) != 1) port = 8081;
    fclose(config);
  }
  return port;
}

int main(int argc, char **argv) {
  int port = port_from_config(argc > 1 ? argv[1] : "/etc/static-server.conf");
  int listener = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
  if (bind(listener, (struct sockaddr *)&addr, sizeof addr) || listen(listener, 16)) {
    perror("static-server: listen");
    return 1;
  }
  fprintf(stderr, "static-server: listening on 127.0.0.1:%d\n", port);
  for (;;) {
    int client = accept(listener, NULL, NULL);
    if (client < 0) continue;
    char request[1024];
    ssize_t n = read(client, request, sizeof request - 1);
    request[n > 0 ? n : 0] = 0;
    const char *reply = "HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nok\n";
    if (write(client, reply, strlen(reply)) < 0) perror("static-server: write");
    close(client);
    printf("served %.*s\n", (int)strcspn(request, "\r\n"), request);
    fflush(stdout);
  }
}
