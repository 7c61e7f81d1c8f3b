/** `express4` is the npm alias of Express 4 (a devDependency): typed as Express, whose API the tests use is the same. */
declare module 'express4' {
  import express from 'express';
  export = express;
}
