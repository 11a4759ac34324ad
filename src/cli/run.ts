// Development entry point: `node --import tsx src/cli/run.ts <command> ...` runs the CLI from source (tests use it too).
import { main } from "./main.ts";

await main(process.argv);
