#!/usr/bin/env node
import { main } from '../host-nbd/cli/main.js';

await main(process.argv.slice(2));
