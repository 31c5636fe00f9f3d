// Slipway's sample Node.js web app.
const http = require("http");
const ms = require("ms");
const started = Date.now();
const port = process.env.PORT || 5000;
http
  .createServer((req, res) => {
    res.end(`hello from node-web (up ${ms(Date.now() - started)})\n`);
  })
  .listen(port, () => console.log(`listening on :${port}`));
