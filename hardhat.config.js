// Hardhat 2 compiles the same sources as py-solc-x (contracts/, OpenZeppelin from node_modules) with
// the same settings, and `hardhat node` serves as a local chain. Offline: the compiler is the solcjs
// build in node_modules instead of one Hardhat would download.
const path = require("path");
const { subtask } = require("hardhat/config");
const { TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD } = require("hardhat/builtin-tasks/task-names");

const SOLC_VERSION = "0.8.28";

subtask(TASK_COMPILE_SOLIDITY_GET_SOLC_BUILD, async (args, hre, runSuper) => {
  if (args.solcVersion !== SOLC_VERSION) return runSuper();
  return {
    compilerPath: require.resolve("solc/soljson.js"),
    isSolcJs: true,
    version: SOLC_VERSION,
    longVersion: require("solc/package.json").version === SOLC_VERSION ? require("solc").version() : SOLC_VERSION,
  };
});

module.exports = {
  solidity: {
    version: SOLC_VERSION,
    // Keep in step with dgpt/chain/compile.py SETTINGS.
    settings: { evmVersion: "cancun", optimizer: { enabled: true, runs: 200 }, viaIR: true },
  },
  networks: {
    hardhat: { hardfork: "cancun", chainId: 31337 },
  },
  // DGPT_HARDHAT_OUT moves the outputs elsewhere (the tests compile into a scratch folder).
  paths: {
    sources: "./contracts",
    artifacts: path.join(process.env.DGPT_HARDHAT_OUT || ".", "artifacts"),
    cache: path.join(process.env.DGPT_HARDHAT_OUT || ".", "cache"),
  },
};
