/**
 * The names a package entry exports (values and types), read by the TypeScript compiler from the entry's source:
 * what each package's export-list test pins, so that widening a public face is a visible decision.
 */
import ts from 'typescript';

/** Every name `entryFile` exports, sorted. */
export function exportedNames(entryFile: string): string[] {
  const program = ts.createProgram([entryFile], {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    target: ts.ScriptTarget.ES2022,
    customConditions: ['@pqc-mcp/source'],
    allowImportingTsExtensions: true,
    noEmit: true,
    skipLibCheck: true,
  });
  const checker = program.getTypeChecker();
  const source = program.getSourceFile(entryFile);
  if (!source) throw new Error(`exportedNames: cannot read ${entryFile}`);
  const module = checker.getSymbolAtLocation(source);
  if (!module) return [];
  return checker
    .getExportsOfModule(module)
    .map((symbol) => symbol.getName())
    .sort();
}
