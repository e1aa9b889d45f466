// Preloaded with `node --require` so that Portkey's gateway listens on 127.0.0.1 only.
// Its server calls listen(port, undefined, callback), which would bind every interface; the benchmark must not.
const net = require("node:net");

const LOOPBACK = "127.0.0.1";
const originalListen = net.Server.prototype.listen;

net.Server.prototype.listen = function listenOnLoopback(...args) {
  const [first, second] = args;
  if (first !== null && typeof first === "object" && !first.host && first.path === undefined) {
    args[0] = { ...first, host: LOOPBACK };
  } else if (typeof first === "number" || (typeof first === "string" && /^\d+$/.test(first))) {
    if (second === undefined || second === null) {
      args[1] = LOOPBACK;
    } else if (typeof second !== "string") {
      args.splice(1, 0, LOOPBACK);
    }
  }
  return originalListen.apply(this, args);
};
