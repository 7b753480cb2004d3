// aegir/chai: chai 4 with the plugins aegir registers, so tests written for aegir run unchanged.
import chai from 'chai'
import chaiAsPromised from 'chai-as-promised'
import chaiBites from 'chai-bites'
import chaiParentheses from 'chai-parentheses'
import chaiString from 'chai-string'
import chaiSubset from 'chai-subset'

chai.use(chaiAsPromised)
chai.use(chaiBites)
chai.use(chaiParentheses)
chai.use(chaiString)
chai.use(chaiSubset)

export const { expect, assert } = chai
export { chai }
