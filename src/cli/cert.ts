// `comity cert generate DOMAIN`: writes a self-signed certificate for a domain into data_dir/certs (RFC 6125 names).
import { access } from "node:fs/promises";
import type { Command } from "commander";
import { generatedCertPaths, generateSelfSigned, inspectCertificate, writeCertificatePair } from "../core/certs.ts";
import { isValidDomain } from "../core/config/load.ts";
import { CliError, printJson, resolveConfig, withConfig } from "./common.ts";

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

/** Register `comity cert generate`. */
export function registerCert(program: Command): void {
  const cert = program.command("cert").description("manage TLS certificates");
  withConfig(
    cert
      .command("generate")
      .description("write a self-signed certificate for DOMAIN (and *.DOMAIN) to <data_dir>/certs/DOMAIN.crt and .key")
      .argument("<domain>", "the domain to certify")
      .option("--days <n>", "validity in days", "365")
      .option("--force", "overwrite existing files"),
    { json: true },
  ).action(async (domainArg: string, opts: { config?: string; json?: boolean; days: string; force?: boolean }) => {
    const { config } = resolveConfig(opts);
    const domain = domainArg.toLowerCase();
    if (!isValidDomain(domain)) throw new CliError(`not a valid domain name: ${JSON.stringify(domainArg)}`);
    const days = Number(opts.days);
    if (!Number.isInteger(days) || days < 1 || days > 3650) throw new CliError(`--days must be a whole number from 1 to 3650 (got ${JSON.stringify(opts.days)})`);
    const files = generatedCertPaths(config.data_dir, domain);
    if (opts.force !== true) {
      for (const f of [files.certFile, files.keyFile]) {
        if (await exists(f)) throw new CliError(`${f} already exists (use --force to replace it)`);
      }
    }
    if (!config.hosts.some((h) => h.domain === domain)) process.stderr.write(`comity: note: ${domain} is not a configured host\n`);
    const pair = await generateSelfSigned(domain, { days });
    await writeCertificatePair(pair, files);
    const notAfter = inspectCertificate(pair.cert).notAfter.toISOString();
    if (opts.json === true) printJson({ domain, ...files, notAfter });
    else process.stdout.write(`certificate: ${files.certFile}\nprivate key: ${files.keyFile}\nvalid until ${notAfter} (self-signed)\n`);
  });
}
