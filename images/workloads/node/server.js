// A Node HTTP service as Node images run it: node /srv/node/server.js.
const http = require("http");
const fs = require("fs");
const os = require("os");

const port = Number(process.env.PORT || 3000);
let served = 0;

http
  .createServer((req, res) => {
    served += 1;
    fs.appendFileSync("/tmp/node-access.log", `${new Date().toISOString()} ${req.method} ${req.url}\n`);
    res.setHeader("Content-Type", "application/json");
    res.end(JSON.stringify({ host: os.hostname(), served, uptime: process.uptime() }));
  })
  .listen(port, "127.0.0.1");
